//! The handlers of the manager's API (jobs, workers, schedulers, health, garbage collection,
//! metrics windows). Each is thin: decode the typed request, call the [`Manager`], encode the
//! typed response. Where each is routed, and who may call it, is the table of
//! [`super::routes`].

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use orkestrator_core::api::*;
use orkestrator_core::ids::{JobId, SchedulerId, WorkerId};
use orkestrator_core::manager::Manager;
use orkestrator_core::metrics::{JobMetrics, MetricsAccepted, MetricsReport, WorkerMetrics};
use orkestrator_core::spec::{Format, parse_job};
use serde::Deserialize;

use super::error::{ApiResult, ErrorResponse, too_large};
use super::extract::{Body, Path, Principal, Query, WaitQuery};

/// `GET /v1/health`: without a credential only whether the manager is up; the whole report
/// for read and operator tokens.
pub(crate) async fn health(
    State(m): State<Manager>,
    who: Option<axum::Extension<orkestrator_core::auth::Principal>>,
) -> Result<Response, ErrorResponse> {
    use orkestrator_core::auth::Role;
    match who {
        Some(p) if matches!(p.role, Role::Operator | Role::Read) => {
            Ok(Json(m.cluster().health().await?).into_response())
        }
        _ => Ok(Json(serde_json::json!({ "status": "up" })).into_response()),
    }
}

/// `POST /v1/gc`: collects garbage now (what ended longer ago than the manager's `--gc-after`).
/// With `?job=NAME`, collects that job now if it has ended (409 if it has not).
pub(crate) async fn collect_garbage(
    State(m): State<Manager>,
    Query(q): Query<GcQuery>,
) -> ApiResult<orkestrator_core::manager::GcReport> {
    if let Some(job) = q.job {
        return Ok(Json(m.cluster().gc_job(&JobId::new(job)).await?));
    }
    let after = m.config().gc_after;
    Ok(Json(m.cluster().gc(after).await?))
}

/// `POST /v1/gc?job=NAME`: one ended job, now.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GcQuery {
    job: Option<String>,
}

/// `POST /v1/jobs`: the body is a job spec — JSON by default, YAML or TOML by `Content-Type`
/// (`application/yaml`, `application/toml`). Invalid specs get the same field-path errors as
/// `orkestrator validate`.
pub(crate) async fn submit_job(
    State(m): State<Manager>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ErrorResponse(too_large()).into_response();
        }
        Err(r) => {
            return ErrorResponse(ApiError::bad_request("invalid_body", r.body_text()))
                .into_response();
        }
    };
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let format = if ctype.contains("yaml") {
        Format::Yaml
    } else if ctype.contains("toml") {
        Format::Toml
    } else {
        Format::Json
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return ErrorResponse(ApiError::bad_request(
            "malformed_spec",
            "the body is not UTF-8 text",
        ))
        .into_response();
    };
    let job = match parse_job(text, format) {
        Ok(j) => j,
        Err(e) => return ErrorResponse(ApiError::from(e)).into_response(),
    };
    match m.jobs().submit(job).await {
        Ok(r) => {
            let status = if r.outcome == SubmitOutcome::Created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(r)).into_response()
        }
        Err(e) => ErrorResponse(e).into_response(),
    }
}

/// `GET /v1/jobs?limit=N&continue=TOKEN`: one page of jobs, by name.
pub(crate) async fn list_jobs(
    State(m): State<Manager>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Page<JobSummary>> {
    Ok(Json(m.jobs().list(&q).await?))
}

pub(crate) async fn get_job(
    State(m): State<Manager>,
    Path(job): Path<String>,
) -> ApiResult<JobView> {
    Ok(Json(m.jobs().get(&JobId::new(job)).await?))
}

pub(crate) async fn stop_job(
    State(m): State<Manager>,
    Path(job): Path<String>,
) -> ApiResult<JobView> {
    Ok(Json(m.jobs().stop(&JobId::new(job)).await?))
}

pub(crate) async fn restart_job(
    State(m): State<Manager>,
    Path(job): Path<String>,
) -> ApiResult<SubmitResponse> {
    Ok(Json(m.jobs().restart(&JobId::new(job)).await?))
}

/// `GET /v1/workers?limit=N&continue=TOKEN`: one page of workers, by id.
pub(crate) async fn list_workers(
    State(m): State<Manager>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Page<WorkerView>> {
    Ok(Json(m.workers().list(&q).await?))
}

pub(crate) async fn register_worker(
    State(m): State<Manager>,
    who: Principal,
    Body(req): Body<RegisterWorker>,
) -> ApiResult<Registered> {
    Ok(Json(m.workers().register_as(req, &who).await?))
}

pub(crate) async fn worker_heartbeat(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Body(hb): Body<WorkerHeartbeat>,
) -> ApiResult<HeartbeatAnswer> {
    Ok(Json(m.workers().heartbeat(&WorkerId::new(id), hb).await?))
}

pub(crate) async fn watch_assignments(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Assignments> {
    let wait = q.wait()?;
    Ok(Json(
        m.workers().watch(&WorkerId::new(id), q.index, wait).await?,
    ))
}

pub(crate) async fn report_status(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Body(updates): Body<Vec<TaskUpdate>>,
) -> ApiResult<ReportResponse> {
    Ok(Json(m.workers().report(&WorkerId::new(id), updates).await?))
}

pub(crate) async fn register_scheduler(
    State(m): State<Manager>,
    who: Principal,
    Body(req): Body<RegisterScheduler>,
) -> ApiResult<Registered> {
    Ok(Json(m.schedulers().register_as(req, &who).await?))
}

pub(crate) async fn scheduler_heartbeat(
    State(m): State<Manager>,
    Path(id): Path<String>,
) -> ApiResult<()> {
    Ok(Json(m.schedulers().heartbeat(&SchedulerId::new(id)).await?))
}

pub(crate) async fn scheduling_work(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<SchedulingWork> {
    let wait = q.wait()?;
    Ok(Json(
        m.schedulers().work(&SchedulerId::new(id), wait).await?,
    ))
}

/// `?last=N`: only the newest N samples of each series.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsQuery {
    last: Option<usize>,
}

/// `GET /v1/jobs/{job}/metrics?last=N`: the rolling window of the job's tasks.
pub(crate) async fn job_metrics(
    State(m): State<Manager>,
    Path(job): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<JobMetrics> {
    Ok(Json(m.metrics().job(&JobId::new(job), q.last).await?))
}

/// `GET /v1/workers/{id}/metrics?last=N`: the rolling window of a worker's host and tasks.
pub(crate) async fn worker_metrics(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<WorkerMetrics> {
    Ok(Json(m.metrics().worker(&WorkerId::new(id), q.last).await?))
}

/// `POST /v1/workers/{id}/metrics`: a worker's report (kept in memory, never committed).
pub(crate) async fn report_metrics(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Body(r): Body<MetricsReport>,
) -> ApiResult<MetricsAccepted> {
    Ok(Json(m.metrics().report(&WorkerId::new(id), r).await?))
}

pub(crate) async fn submit_decisions(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Body(d): Body<Vec<Decision>>,
) -> ApiResult<Vec<DecisionResult>> {
    Ok(Json(m.schedulers().decide(&SchedulerId::new(id), d).await?))
}
