//! The handlers of named volumes: the list (read tokens), removal by an operator, and a worker's
//! confirmation that it removed what it was told to.

use axum::Json;
use axum::extract::State;
use orkestrator_core::api::{ApiError, VolumeList, VolumeRef, VolumeView, VolumesRemoved};
use orkestrator_core::ids::{JobId, WorkerId};
use orkestrator_core::manager::Manager;
use serde::Deserialize;

use super::error::ApiResult;
use super::extract::{Body, Path, Query};

/// `?job=J`: only that job's volumes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    job: Option<String>,
}

/// `GET /v1/volumes[?job=J]`.
pub(crate) async fn list(
    State(m): State<Manager>,
    Query(q): Query<ListQuery>,
) -> ApiResult<VolumeList> {
    let job = q.job.map(JobId::new);
    Ok(Json(m.volumes().list(job.as_ref()).await?))
}

/// `?worker=W`: which worker's copy, when more than one holds it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveQuery {
    worker: Option<String>,
}

/// `DELETE /v1/volumes/{job}/{index}/{volume}[?worker=W]`.
pub(crate) async fn remove(
    State(m): State<Manager>,
    Path((job, index, volume)): Path<(String, String, String)>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<VolumeView> {
    let index: u32 = index.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_index",
            format!("instance index {index:?}: not a number (the INDEX column of `orkestrator volume list`)"),
        )
    })?;
    let of = VolumeRef {
        job: JobId::new(job),
        index,
        volume,
    };
    let worker = q.worker.map(WorkerId::new);
    Ok(Json(m.volumes().remove(&of, worker.as_ref()).await?))
}

/// `POST /v1/workers/{id}/volumes/removed`: a worker's confirmation.
pub(crate) async fn removed(
    State(m): State<Manager>,
    Path(id): Path<String>,
    Body(r): Body<VolumesRemoved>,
) -> ApiResult<()> {
    Ok(Json(
        m.workers().volumes_removed(&WorkerId::new(id), r).await?,
    ))
}
