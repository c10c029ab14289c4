//! How [`HttpTransport`] sends a request: to the current address, moving on to the next one, to
//! the leader a follower names, or round the managers while they elect one; whole answers and
//! streams.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, header};
use orkestrator_core::api::{ApiError, ErrorKind};
use orkestrator_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::addr::advance_from;
use super::describe::describe;
use super::transport::{
    ByteStream, HttpTransport, LEADER_HEADER, MAX_RESPONSE_BYTES, NO_LEADER_BACKOFF_MAX,
    NO_LEADER_BACKOFF_MIN, WORKER_HEADER, WORKER_PEER,
};

impl HttpTransport {
    pub(super) async fn call_as<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        bearer: Option<String>,
    ) -> Result<R> {
        let body = Bytes::from(
            serde_json::to_vec(&body)
                .map_err(|e| self.unreachable(format!("cannot encode request: {e}")))?,
        );
        self.send_as(
            method,
            path,
            "application/json",
            body,
            Duration::ZERO,
            bearer,
        )
        .await
    }

    pub(super) async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        extra_wait: Duration,
    ) -> Result<R> {
        let body = match body {
            Some(b) => Bytes::from(
                serde_json::to_vec(b)
                    .map_err(|e| self.unreachable(format!("cannot encode request: {e}")))?,
            ),
            None => Bytes::new(),
        };
        self.send(method, path, "application/json", body, extra_wait)
            .await
    }

    pub(super) async fn send<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
        extra_wait: Duration,
    ) -> Result<R> {
        let bearer = self.credentials.bearer();
        self.send_as(method, path, content_type, body, extra_wait, bearer)
            .await
    }

    pub(super) async fn send_as<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
        extra_wait: Duration,
        bearer: Option<String>,
    ) -> Result<R> {
        let out = Outgoing {
            method,
            path,
            content_type: Some(content_type),
            accept: "application/json",
            headers: &[],
            body,
            bearer,
            timeout: self.timeout + extra_wait,
            stream: false,
        };
        let (i, answer) = self.exchange(&out).await?;
        let Answer::Whole(status, bytes) = answer else {
            return Err(self.unreachable("a stream where a whole answer was expected".into()));
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            let uri = format!("{}{path}", self.addrs[i]);
            self.unreachable_at(
                i,
                format!(
                    "unexpected response from {uri} ({status}): {e}; is this an Orkestrator manager?"
                ),
            )
        })
    }

    /// Sends `out` to the current address, moving on as the type's documentation says: to the
    /// next address when this one cannot be reached (once round the list), to the leader a
    /// follower names, round the list with a backoff while there is no leader. Returns the index
    /// of the address that answered and its (successful) answer; an error answer that is not
    /// about the leader is returned as its [`ApiError`] at once.
    pub(super) async fn exchange(&self, out: &Outgoing<'_>) -> Result<(usize, Answer)> {
        let n = self.addrs.len();
        let started = Instant::now();
        let mut unreachable_in_a_row = 0;
        let mut backoff = NO_LEADER_BACKOFF_MIN;
        loop {
            let i = self.index();
            let failed = match self.attempt(i, out).await {
                Ok((leader, answer)) => {
                    let moved = leader.is_some_and(|l| self.follow_leader(&l));
                    let (status, bytes) = match answer {
                        Answer::Whole(status, bytes) if !status.is_success() => (status, bytes),
                        Answer::Foreign(e) => return Err(e),
                        answer => return Ok((i, answer)),
                    };
                    let e = self.api_error(status, &bytes);
                    let Error::Api(a) = &e else { return Err(e) };
                    if !about_the_leader(a) {
                        return Err(e);
                    }
                    unreachable_in_a_row = 0;
                    if started.elapsed() + backoff > self.election_wait {
                        return Err(e);
                    }
                    tracing::debug!(addr = %self.addrs[i], code = %a.code, "no leader there; trying again");
                    if !moved {
                        self.advance(i);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(NO_LEADER_BACKOFF_MAX);
                    continue;
                }
                Err(e) => e,
            };
            unreachable_in_a_row += 1;
            self.advance(i);
            if unreachable_in_a_row >= n {
                return Err(match failed {
                    Error::Unreachable { addr, message } if n > 1 => Error::Unreachable {
                        addr,
                        message: format!(
                            "{message}; no other manager answered either ({})",
                            self.addrs.join(", ")
                        ),
                    },
                    other => other,
                });
            }
            tracing::debug!(error = %failed, next = %self.base(), "manager unreachable; trying the next address");
        }
    }

    /// Sends `out` once to the address at `i`: the leader it names, if any, and its answer (an
    /// error answer read whole). Every error is the address failing to answer.
    pub(super) async fn attempt(
        &self,
        i: usize,
        out: &Outgoing<'_>,
    ) -> Result<(Option<String>, Answer)> {
        let uri = format!("{}{}", self.addrs[i], out.path);
        let mut req = Request::builder()
            .method(out.method.clone())
            .uri(&uri)
            .header(header::ACCEPT, out.accept);
        if let Some(c) = out.content_type {
            req = req.header(header::CONTENT_TYPE, c);
        }
        if let Some(t) = &out.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in out.headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Full::new(out.body.clone()))
            .map_err(|e| self.unreachable_at(i, format!("bad request to {uri}: {e}")))?;
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| self.unreachable_at(i, describe(&e, self.peer, &self.addrs[i])))?;
            let status = resp.status();
            let leader = resp
                .headers()
                .get(LEADER_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let to_worker = self.peer == WORKER_PEER;
            if let Some(e) = foreign(&self.addrs[i], status, resp.headers(), to_worker) {
                return Ok((leader, Answer::Foreign(e)));
            }
            if out.stream && status.is_success() {
                return Ok((leader, Answer::Stream(resp.into_body())));
            }
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| self.unreachable_at(i, format!("reading the response: {e}")))?
                .to_bytes();
            Ok::<_, Error>((leader, Answer::Whole(status, bytes)))
        };
        tokio::time::timeout(out.timeout, fut)
            .await
            .map_err(|_| self.unreachable_at(i, format!("no answer within {:?}", out.timeout)))?
    }

    /// Opens a streaming `GET`: once the answer's head has come (within the timeout), its body
    /// as it arrives, with no deadline. An error answer is read whole and returned as its
    /// [`ApiError`]. Opening it moves between addresses as any request does; a stream that breaks
    /// moves the client to the next address, for the call that opens it again.
    pub async fn stream_get(
        &self,
        path: &str,
        accept: &str,
        headers: &[(&str, String)],
    ) -> Result<ByteStream> {
        let out = Outgoing {
            method: Method::GET,
            path,
            content_type: None,
            accept,
            headers,
            body: Bytes::new(),
            bearer: self.credentials.bearer(),
            timeout: self.timeout,
            stream: true,
        };
        let (i, answer) = self.exchange(&out).await?;
        let body = match answer {
            Answer::Stream(body) => body,
            // Not an error answer (those are errors by now): a body the server sent whole.
            Answer::Whole(_, bytes) => {
                return Ok(Box::pin(futures_util::stream::once(
                    async move { Ok(bytes) },
                )));
            }
            Answer::Foreign(e) => return Err(e),
        };
        let base = self.addrs[i].clone();
        let current = self.current.clone();
        let n = self.addrs.len();
        let body = http_body_util::BodyStream::new(body);
        Ok(Box::pin(body.filter_map(move |frame| {
            let base = base.clone();
            let current = current.clone();
            async move {
                match frame {
                    Ok(f) => f.into_data().ok().map(Ok),
                    Err(e) => {
                        advance_from(&current, i, n);
                        Some(Err(Error::Unreachable {
                            addr: base,
                            message: format!("the stream broke: {e}"),
                        }))
                    }
                }
            }
        })))
    }

    pub(super) fn api_error(&self, status: hyper::StatusCode, bytes: &[u8]) -> Error {
        Error::Api(
            serde_json::from_slice::<ApiError>(bytes).unwrap_or_else(|_| {
                ApiError::new(
                    crate::http::error::kind_of(status),
                    "http_error",
                    format!(
                        "{status}: {}",
                        String::from_utf8_lossy(bytes)
                            .chars()
                            .take(500)
                            .collect::<String>()
                    ),
                )
            }),
        )
    }

    /// An [`Error::Unreachable`] at the current address.
    pub(super) fn unreachable(&self, message: String) -> Error {
        self.unreachable_at(self.index(), message)
    }

    /// An [`Error::Unreachable`] at the address at `i`.
    pub(super) fn unreachable_at(&self, i: usize, message: String) -> Error {
        Error::Unreachable {
            addr: self.addrs[i].clone(),
            message,
        }
    }
}

/// One request, as it is sent to whichever address.
pub(super) struct Outgoing<'a> {
    method: Method,
    path: &'a str,
    content_type: Option<&'a str>,
    accept: &'a str,
    headers: &'a [(&'a str, String)],
    body: Bytes,
    bearer: Option<String>,
    /// How long the answer may take to come: all of it, or for a stream its head.
    timeout: Duration,
    /// Whether a successful answer's body is handed on as it arrives.
    stream: bool,
}

/// An answer to an [`Outgoing`] request.
pub(super) enum Answer {
    /// Its status and whole body.
    Whole(hyper::StatusCode, Bytes),
    /// A successful stream's body, as it arrives.
    Stream(hyper::body::Incoming),
    /// An answer that is not an Orkestrator manager's, as the error that says so.
    Foreign(Error),
}

/// The error that says what answered at `addr` instead of a manager, if it was not one: a
/// worker's endpoint (it marks its error answers with [`WORKER_HEADER`]), or another web server
/// (an error answer that is not JSON, as the manager's all are). Never the other server's body.
/// A client of a worker's endpoint (`to_worker`) expects the worker's mark.
fn foreign(
    addr: &str,
    status: hyper::StatusCode,
    headers: &hyper::HeaderMap,
    to_worker: bool,
) -> Option<Error> {
    // A proxy's 5xx in front of a manager that is restarting passes: it is retried as the
    // manager's own would be.
    let kind = if status.is_server_error() {
        ErrorKind::Unavailable
    } else {
        ErrorKind::NotFound
    };
    let not_a_manager =
        |message: String| Some(Error::Api(ApiError::new(kind, "not_a_manager", message)));
    if !to_worker && headers.contains_key(WORKER_HEADER) {
        return not_a_manager(format!(
            "{addr} is an Orkestrator worker, not the manager (the manager's address is the \
             one its `server` or `seed` command prints)"
        ));
    }
    if status.is_success() {
        return None;
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/json") => None,
        Some(m) => not_a_manager(format!(
            "{addr} does not answer as an Orkestrator manager ({}, {m})",
            status.as_u16()
        )),
        None => not_a_manager(format!(
            "{addr} does not answer as an Orkestrator manager ({}, no content type)",
            status.as_u16()
        )),
    }
}

/// Whether an error answer says to ask another manager: there is no leader yet (`no_leader`,
/// an election is on) or this one is not it (`421`).
fn about_the_leader(e: &ApiError) -> bool {
    e.code == "no_leader" || e.kind == ErrorKind::NotLeader
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_leader_answers_send_a_request_elsewhere() {
        assert!(about_the_leader(&ApiError::unavailable(
            "no_leader",
            "election"
        )));
        assert!(about_the_leader(&ApiError::new(
            ErrorKind::NotLeader,
            "not_leader",
            "ask the leader"
        )));
        assert!(!about_the_leader(&ApiError::unavailable(
            "store",
            "commit failed"
        )));
        assert!(!about_the_leader(&ApiError::not_found("job", "web")));
    }
}
