//! A lean HTTP/1.1 client: one kept-alive connection per requester, on hyper's connection API
//! (no pool, so that each requester really holds one socket of its own). Every call presents a
//! bearer token (issue 11): the connection's own, or one given for that call (the simulated
//! workers share heartbeat connections, each heartbeat with its worker's credential).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// An answer: status and the whole body.
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The body as text, cut to a readable length, for error messages.
    pub fn body_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        if text.len() > 600 {
            let mut end = 600;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}… ({} bytes)", &text[..end], self.body.len())
        } else {
            text.into_owned()
        }
    }

    /// Parses the body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("unexpected answer body: {}", self.body_text()))
    }
}

/// A bearer token as the `Authorization` header that presents it (marked sensitive, so that it
/// never shows in a debug print).
#[derive(Clone)]
pub struct Bearer(HeaderValue);

impl Bearer {
    /// The header for `token` (`ork.ID.SECRET`, as the manager wrote or issued it).
    pub fn new(token: &str) -> Result<Self> {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .context("a token must be printable ASCII")?;
        v.set_sensitive(true);
        Ok(Bearer(v))
    }

    /// The token in `path` (its first line: a file the server wrote, such as
    /// `DATA_DIR/operator.token`).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let token = text.lines().next().unwrap_or_default().trim();
        if token.is_empty() {
            bail!("{} holds no token", path.display());
        }
        Bearer::new(token)
    }
}

/// Where a manager listens, and the tokens its server wrote in its data directory.
#[derive(Clone)]
pub struct Api {
    /// Its API's address.
    pub addr: SocketAddr,
    /// `DATA_DIR/operator.token`: submissions, reads, the job and worker lists. `None` only for
    /// a manager from before tokens (issue 11), which writes none: then nothing is presented,
    /// so that the same harness measures a build from before and after.
    pub operator: Option<Bearer>,
    /// `DATA_DIR/join.token`: what simulated workers register with (`None` as above).
    pub join: Option<Bearer>,
}

/// The file in a manager's data directory that holds its operator token.
pub const OPERATOR_FILE: &str = "operator.token";
/// The file that holds its join token.
pub const JOIN_FILE: &str = "join.token";

impl Api {
    /// The tokens in `data_dir`, for the manager at `addr`: both, or (a manager from before
    /// tokens, whose directory holds neither file) none.
    pub fn read(addr: SocketAddr, data_dir: &Path) -> Result<Self> {
        let (operator, join) = (data_dir.join(OPERATOR_FILE), data_dir.join(JOIN_FILE));
        if !operator.exists() && !join.exists() {
            return Ok(Api {
                addr,
                operator: None,
                join: None,
            });
        }
        Ok(Api {
            addr,
            operator: Some(Bearer::read(&operator)?),
            join: Some(Bearer::read(&join)?),
        })
    }

    /// Whether the manager's API takes tokens (its server wrote them).
    pub fn has_tokens(&self) -> bool {
        self.operator.is_some()
    }

    /// A connection presenting the operator token, opened lazily by the first call.
    pub fn conn(&self) -> Conn {
        Conn::new(self.addr).with_auth(self.operator.clone())
    }

    /// A connection presenting the operator token, opened now.
    pub async fn open(&self) -> Result<Conn> {
        let mut c = self.conn();
        c.connect().await?;
        Ok(c)
    }
}

/// One HTTP/1.1 connection to the manager, reconnected on the next call after it broke.
pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    auth: Option<Bearer>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection to `addr` presenting no token (public endpoints only, or a token per call),
    /// opened lazily by the first call.
    pub fn new(addr: SocketAddr) -> Self {
        let host = HeaderValue::from_str(&addr.to_string()).expect("a socket address is ASCII");
        Conn {
            addr,
            host,
            auth: None,
            sender: None,
        }
    }

    /// The same connection presenting `auth` on every call that names no token of its own.
    pub fn with_auth(mut self, auth: Option<Bearer>) -> Self {
        self.auth = auth;
        self
    }

    /// A connection to `addr` presenting `auth`, opened now.
    pub async fn open(addr: SocketAddr, auth: Option<Bearer>) -> Result<Self> {
        let mut c = Conn::new(addr).with_auth(auth);
        c.connect().await?;
        Ok(c)
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("cannot connect to the manager at {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(async move {
            // Ends when either side closes; errors show up on the next request.
            let _ = conn.await;
        });
        Ok(self.sender.insert(sender))
    }

    /// Sends one request with the connection's token and reads the whole answer. Transport
    /// errors drop the connection (the next call opens a new one); HTTP statuses are left to the
    /// caller.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Answer> {
        let auth = self.auth.clone();
        self.call_as(auth.as_ref(), method, path, body).await
    }

    /// As [`Conn::call`], presenting `auth` (none: no `Authorization` header).
    pub async fn call_as(
        &mut self,
        auth: Option<&Bearer>,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Answer> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, self.host.clone());
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a.0.clone());
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let sender = match self.sender.take() {
            Some(s) if !s.is_closed() => self.sender.insert(s),
            _ => self.connect().await?,
        };
        let result = async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>(Answer { status, body })
        }
        .await;
        match result {
            Ok(a) => Ok(a),
            Err(e) => {
                self.sender = None;
                Err(anyhow!(e).context(format!("{method} {path}: no answer")))
            }
        }
    }

    /// Sends one request and fails unless the answer is 2xx, naming the request and the body.
    pub async fn expect_ok(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Answer> {
        let auth = self.auth.clone();
        self.expect_ok_as(auth.as_ref(), method, path, body).await
    }

    /// As [`Conn::expect_ok`], presenting `auth`.
    pub async fn expect_ok_as(
        &mut self,
        auth: Option<&Bearer>,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Answer> {
        let a = self.call_as(auth, method.clone(), path, body).await?;
        if !a.ok() {
            bail!("{method} {path} answered {}: {}", a.status, a.body_text());
        }
        Ok(a)
    }

    /// `GET path`, 2xx required.
    pub async fn get(&mut self, path: &str) -> Result<Answer> {
        self.expect_ok(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body, 2xx required.
    pub async fn post(&mut self, path: &str, body: Bytes) -> Result<Answer> {
        self.expect_ok(Method::POST, path, Some(body)).await
    }
}

/// Every item of a list endpoint (`/v1/jobs`, `/v1/workers`): today a plain JSON array, after the
/// manager's rewrite pages of `{"items": [...], "continue": "..."}` followed until the end.
pub async fn list_all(conn: &mut Conn, path: &str) -> Result<Vec<serde_json::Value>> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let url = match &token {
            None => format!("{path}?limit=1000"),
            Some(t) => format!("{path}?limit=1000&continue={}", percent_encode(t)),
        };
        let page: serde_json::Value = conn.get(&url).await?.json()?;
        match page {
            serde_json::Value::Array(a) => {
                items.extend(a);
                return Ok(items);
            }
            serde_json::Value::Object(mut o) => {
                if let Some(serde_json::Value::Array(a)) = o.remove("items") {
                    items.extend(a);
                }
                match o.remove("continue") {
                    Some(serde_json::Value::String(t)) if !t.is_empty() => token = Some(t),
                    _ => return Ok(items),
                }
            }
            other => bail!("GET {path}: expected a list, got {other}"),
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Waits until `GET /v1/health` answers 200 at `addr`, trying every 20 ms until `deadline` passes
/// (without a token: the manager answers `{"status":"up"}` to anyone).
pub async fn wait_healthy(addr: SocketAddr, deadline: Duration) -> Result<()> {
    let start = std::time::Instant::now();
    let mut last = String::from("no attempt");
    while start.elapsed() < deadline {
        let mut c = Conn::new(addr);
        match c.call(Method::GET, "/v1/health", None).await {
            Ok(a) if a.ok() => return Ok(()),
            Ok(a) => last = format!("answered {}: {}", a.status, a.body_text()),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the manager at {addr} did not answer GET /v1/health within {deadline:?} (last: {last})")
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn tokens_are_percent_encoded() {
        assert_eq!(percent_encode("a-Z_0.~"), "a-Z_0.~");
        assert_eq!(percent_encode("a b/c=+"), "a%20b%2Fc%3D%2B");
    }
}
