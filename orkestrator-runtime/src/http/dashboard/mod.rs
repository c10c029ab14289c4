//! The manager's web dashboard: a single page and its script and style sheet, embedded in the
//! binary and served at `/`, `/ui/app.js`, `/ui/style.css` and `/ui/icon.svg`.
//!
//! The page is static; its script reads the JSON API (`/v1/health`, `/v1/jobs`, `/v1/workers`,
//! `/v1/volumes`, the metrics windows) and follows `/v1/events`. Everything it shows that comes
//! from a job file or a container is put in the page as text, never as markup, and the
//! Content-Security-Policy every answer carries allows no inline script and nothing from another
//! origin. A task's secrets are shown by name, path and mode only: the API carries no value.
//!
//! Signing in: when the API answers 401, the page shows a form for a token (an operator or read
//! one) and its script POSTs it as JSON to `/v1/session`, whose answer sets the HttpOnly,
//! SameSite=Strict `ork_session` cookie that every later call (fetch and `EventSource`, same
//! origin) carries. The token is kept nowhere: not in a URL, not in `localStorage` or
//! `sessionStorage`. The page shows the role signed in (`GET /v1/auth/whoami`) and signs out
//! with `DELETE /v1/session`. It only reads: it submits, stops or collects nothing.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page.
const INDEX_HTML: &str = include_str!("index.html");
/// Its script: the parts under `app/`, in order, inside one strict-mode closure (they share its
/// names; nothing reaches the page's global scope).
const APP_JS: &str = concat!(
    "\"use strict\";\n(() => {\n",
    include_str!("app/state.js"),
    include_str!("app/dom.js"),
    include_str!("app/api.js"),
    include_str!("app/workers.js"),
    include_str!("app/volumes.js"),
    include_str!("app/jobs.js"),
    include_str!("app/events.js"),
    include_str!("app/session.js"),
    "})();\n",
);
/// Its style sheet.
const STYLE_CSS: &str = include_str!("style.css");
/// Its icon.
const ICON_SVG: &str = include_str!("icon.svg");

/// The Content-Security-Policy of every dashboard answer: scripts, styles and API calls from
/// this origin only; no inline scripts, no plugins, no frames. `form-action 'none'`: the
/// sign-in form is posted by the script (as JSON, with `fetch`), never submitted by the browser
/// itself, so a token can never end up in a URL or a form post.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the page.
pub(crate) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /ui/app.js`: its script.
pub(crate) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /ui/style.css`: its style sheet.
pub(crate) async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// `GET /ui/icon.svg`: its icon.
pub(crate) async fn icon_svg() -> Response {
    asset("image/svg+xml", ICON_SVG)
}

/// One embedded file with its type and the security headers.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A new binary serves new files: let the browser check each time (they are small).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
