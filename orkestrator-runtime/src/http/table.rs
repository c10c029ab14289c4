//! What a route table is made of: each row a method and path, its handler, who may call it
//! ([`Access`]), whether its answer is long-lived, and how an HA follower answers it
//! ([`Follower`]). [`Table::router`] routes the handlers; [`Table::policies`] is the rest, which
//! the authentication layer and the HA forwarder read (by the route axum matched, or by the
//! templates for requests no route takes), so no one parses paths of their own.
//!
//! The rows of the manager's API are [`super::routes::table`].

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use orkestrator_core::manager::Manager;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a credential (a bearer token presented is still checked).
    Public,
    /// Any valid credential.
    AnyCredential,
    /// Read and operator tokens.
    Read,
    /// Operator tokens.
    Operator,
    /// Registering a component: the join token, an operator token, or a component's own
    /// credential (the manager decides which component it may register).
    Register,
    /// The worker the path's `{id}` names, and operators.
    Worker,
    /// The scheduler the path's `{id}` names, and operators.
    Scheduler,
}

/// What a follower among several managers does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Follower {
    /// It forwards the request to the leader.
    #[default]
    Forwards,
    /// It answers the read from its own copy of the state when it can (else forwards it).
    Reads(FollowerRead),
}

/// A read a follower answers from its copy of the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerRead {
    /// One page of the job list.
    JobList,
    /// One job, named by the path's `{job}`.
    Job,
}

/// One method of one route.
struct Row {
    method: Method,
    access: Access,
    long_lived: bool,
    follower: Follower,
    handler: MethodRouter<Manager>,
}

/// The methods of one route, as [`get`], [`post`] and [`delete`] start them.
pub struct Endpoint {
    rows: Vec<Row>,
    others: Option<Access>,
}

/// A `GET` route (it answers `HEAD` too) that `access` may call, served by `handler`.
pub fn get<H: Handler<T, Manager>, T: 'static>(access: Access, handler: H) -> Endpoint {
    Endpoint::one(Method::GET, access, handler)
}

/// A `POST` route that `access` may call, served by `handler`.
pub fn post<H: Handler<T, Manager>, T: 'static>(access: Access, handler: H) -> Endpoint {
    Endpoint::one(Method::POST, access, handler)
}

/// A `PUT` route that `access` may call, served by `handler`.
pub fn put<H: Handler<T, Manager>, T: 'static>(access: Access, handler: H) -> Endpoint {
    Endpoint::one(Method::PUT, access, handler)
}

/// A `DELETE` route that `access` may call, served by `handler`.
pub fn delete<H: Handler<T, Manager>, T: 'static>(access: Access, handler: H) -> Endpoint {
    Endpoint::one(Method::DELETE, access, handler)
}

impl Endpoint {
    fn one<H: Handler<T, Manager>, T: 'static>(method: Method, access: Access, handler: H) -> Self {
        Endpoint {
            rows: Vec::new(),
            others: None,
        }
        .with(method, access, handler)
    }

    fn with<H: Handler<T, Manager>, T: 'static>(
        mut self,
        method: Method,
        access: Access,
        handler: H,
    ) -> Self {
        let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
        self.rows.push(Row {
            method,
            access,
            long_lived: false,
            follower: Follower::Forwards,
            handler: axum::routing::on(filter, handler),
        });
        self
    }

    /// Adds a `GET` method (see [`get`]).
    pub fn get<H: Handler<T, Manager>, T: 'static>(self, access: Access, handler: H) -> Self {
        self.with(Method::GET, access, handler)
    }

    /// Adds a `POST` method (see [`post`]).
    pub fn post<H: Handler<T, Manager>, T: 'static>(self, access: Access, handler: H) -> Self {
        self.with(Method::POST, access, handler)
    }

    /// Adds a `PUT` method (see [`put`]).
    pub fn put<H: Handler<T, Manager>, T: 'static>(self, access: Access, handler: H) -> Self {
        self.with(Method::PUT, access, handler)
    }

    /// Adds a `DELETE` method (see [`delete`]).
    pub fn delete<H: Handler<T, Manager>, T: 'static>(self, access: Access, handler: H) -> Self {
        self.with(Method::DELETE, access, handler)
    }

    /// The method added last holds its answer open (a long-poll or a stream): it counts
    /// against the credential's stream limit.
    pub fn long_lived(mut self) -> Self {
        if let Some(r) = self.rows.last_mut() {
            r.long_lived = true;
        }
        self
    }

    /// A follower answers the method added last from its copy of the state (see [`FollowerRead`]).
    pub fn followers_read(mut self, read: FollowerRead) -> Self {
        if let Some(r) = self.rows.last_mut() {
            r.follower = Follower::Reads(read);
        }
        self
    }

    /// Who may learn that the route does not take a method (`405`): `access`, where it is not
    /// the rule of requests no route takes (see [`Policies::resolve`]).
    pub fn others(mut self, access: Access) -> Self {
        self.others = Some(access);
        self
    }
}

/// A part of the path space and who may call what no route of it takes (`404`, `405`).
struct Room {
    prefix: &'static str,
    reads: Option<Access>,
    writes: Option<Access>,
}

/// A route table under construction, then the router and the policies made of it.
#[derive(Default)]
pub struct Table {
    routes: Vec<(&'static str, Endpoint)>,
    rooms: Vec<Room>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Table::default()
    }

    /// Routes `path` (axum's syntax: `/v1/jobs/{job}`) to `endpoint`'s methods.
    pub fn route(mut self, path: &'static str, endpoint: Endpoint) -> Self {
        self.routes.push((path, endpoint));
        self
    }

    /// Requests under `prefix` (the path itself or below it) that no route takes need `reads`
    /// (`GET`, `HEAD`) or `writes` (other methods); `None` leaves the default rule (see
    /// [`Policies::resolve`]).
    pub fn room(
        mut self,
        prefix: &'static str,
        reads: Option<Access>,
        writes: Option<Access>,
    ) -> Self {
        self.rooms.push(Room {
            prefix,
            reads,
            writes,
        });
        self
    }

    /// What the authentication layer and the forwarder read: every route's methods and their
    /// policies, without the handlers.
    pub fn policies(&self) -> Policies {
        Policies {
            paths: self
                .routes
                .iter()
                .map(|(path, e)| PathPolicy {
                    template: path,
                    rows: e
                        .rows
                        .iter()
                        .map(|r| RowPolicy {
                            method: r.method.clone(),
                            access: r.access,
                            long_lived: r.long_lived,
                            follower: r.follower,
                        })
                        .collect(),
                    others: e.others,
                })
                .collect(),
            rooms: self
                .rooms
                .iter()
                .map(|r| RoomPolicy {
                    prefix: r.prefix,
                    reads: r.reads,
                    writes: r.writes,
                })
                .collect(),
        }
    }

    /// The routes, each with its handlers (no fallbacks, no layers).
    pub fn router(self) -> axum::Router<Manager> {
        let mut router = axum::Router::new();
        for (path, endpoint) in self.routes {
            let mut methods = MethodRouter::new();
            for row in endpoint.rows {
                methods = methods.merge(row.handler);
            }
            router = router.route(path, methods);
        }
        router
    }
}

/// One method of a route, without its handler.
#[derive(Debug, Clone)]
struct RowPolicy {
    method: Method,
    access: Access,
    long_lived: bool,
    follower: Follower,
}

/// One route's policies.
#[derive(Debug, Clone)]
struct PathPolicy {
    template: &'static str,
    rows: Vec<RowPolicy>,
    others: Option<Access>,
}

/// One room's policies.
#[derive(Debug, Clone)]
struct RoomPolicy {
    prefix: &'static str,
    reads: Option<Access>,
    writes: Option<Access>,
}

/// A table's policies: who may call each route, whether its answer is long-lived, how a
/// follower answers it.
#[derive(Debug, Clone)]
pub struct Policies {
    paths: Vec<PathPolicy>,
    rooms: Vec<RoomPolicy>,
}

/// What a request needs, as [`Policies::resolve`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Who may call it.
    pub access: Access,
    /// The path's `{id}` (percent-decoded), for [`Access::Worker`] and [`Access::Scheduler`].
    pub id: Option<String>,
    /// Whether its answer is long-lived.
    pub long_lived: bool,
}

impl Policies {
    /// Every route's path template and its methods, in the order the table states them (what
    /// the OpenAPI test holds the document against).
    pub fn routes(&self) -> Vec<(&'static str, Vec<Method>)> {
        self.paths
            .iter()
            .map(|p| {
                (
                    p.template,
                    p.rows.iter().map(|r| r.method.clone()).collect(),
                )
            })
            .collect()
    }

    /// What `method path` needs. `matched` is the route axum matched (its `MatchedPath`), if
    /// any; a request it did not match is looked up by the templates themselves (an empty
    /// segment matches a parameter here, where axum's router does not match it).
    ///
    /// A route's own method has its row's access. A method the route does not take has the
    /// route's [`Endpoint::others`], else its room's, else the default rule: [`Access::Read`]
    /// for `GET` and `HEAD`, [`Access::Operator`] for every other method. A request under no
    /// route has its room's access, else the default rule.
    pub fn resolve(&self, matched: Option<&str>, method: &Method, path: &str) -> Resolved {
        let read = *method == Method::GET || *method == Method::HEAD;
        let method = if *method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let route = match matched {
            Some(m) => self.paths.iter().find(|p| p.template == m),
            None => self
                .paths
                .iter()
                .find(|p| capture(p.template, path, false).is_some()),
        };
        let mut long_lived = false;
        if let Some(p) = route
            && let Some(params) = capture(p.template, path, false)
        {
            let id = param(&params, "id");
            if let Some(r) = p.rows.iter().find(|r| r.method == *method) {
                return Resolved {
                    access: r.access,
                    id,
                    long_lived: r.long_lived,
                };
            }
            long_lived = p.rows.iter().any(|r| r.long_lived);
            if let Some(access) = p.others {
                return Resolved {
                    access,
                    id,
                    long_lived,
                };
            }
        }
        for room in &self.rooms {
            let Some(params) = capture(room.prefix, path, true) else {
                continue;
            };
            if let Some(access) = if read { room.reads } else { room.writes } {
                return Resolved {
                    access,
                    id: param(&params, "id"),
                    long_lived,
                };
            }
        }
        Resolved {
            access: if read { Access::Read } else { Access::Operator },
            id: None,
            long_lived,
        }
    }

    /// Every route's path template, in the table's order.
    pub fn templates(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.paths.iter().map(|p| p.template)
    }

    /// The read a follower answers itself for `GET path`, if the table says it does, and the
    /// path's parameters as they came (not decoded); a parameter must not be empty.
    pub fn follower_read<'p>(&self, path: &'p str) -> Option<(FollowerRead, Vec<(&str, &'p str)>)> {
        self.paths.iter().find_map(|p| {
            let read = p.rows.iter().find_map(|r| match r.follower {
                Follower::Reads(read) if r.method == Method::GET => Some(read),
                _ => None,
            })?;
            let params = capture(p.template, path, false)?;
            params
                .iter()
                .all(|(_, v)| !v.is_empty())
                .then_some((read, params))
        })
    }
}

/// The parameters of `path` by `template` (`{name}` takes one segment, every other segment is
/// itself), if it matches; with `prefix`, `path` may go on below the template.
fn capture<'t, 'p>(
    template: &'t str,
    path: &'p str,
    prefix: bool,
) -> Option<Vec<(&'t str, &'p str)>> {
    let mut want = template.trim_start_matches('/').split('/');
    // Every leading slash goes, as the path rules before the table read paths.
    let mut have = path.strip_prefix('/')?.trim_start_matches('/').split('/');
    let mut params = Vec::new();
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(params),
            (None, Some(_)) if prefix => return Some(params),
            (Some(w), Some(h)) => match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(name) => params.push((name, h)),
                None if w == h => {}
                None => return None,
            },
            _ => return None,
        }
    }
}

/// The parameter `name` of `params`, percent-decoded.
fn param(params: &[(&str, &str)], name: &str) -> Option<String> {
    params
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| decode(v))
}

/// Percent-decodes a path segment (`w%201` is worker `w 1`); one that does not decode names no
/// component.
pub(crate) fn decode(seg: &str) -> String {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| "\u{fffd}".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_capture_segments() {
        assert_eq!(capture("/v1/jobs", "/v1/jobs", false), Some(vec![]));
        assert_eq!(
            capture("/v1/jobs/{job}", "/v1/jobs/web", false),
            Some(vec![("job", "web")])
        );
        assert_eq!(
            capture("/v1/jobs/{job}", "/v1/jobs/", false),
            Some(vec![("job", "")])
        );
        assert_eq!(capture("/v1/jobs/{job}", "/v1/jobs/a/b", false), None);
        assert_eq!(
            capture("/v1/schedulers/{id}", "/v1/schedulers/s/a/b", true),
            Some(vec![("id", "s")])
        );
        assert_eq!(capture("/ui", "/ui", true), Some(vec![]));
        assert_eq!(capture("/ui", "/uix", true), None);
        assert_eq!(capture("/", "/", false), Some(vec![]));
        assert_eq!(capture("/", "//", false), Some(vec![]));
        assert_eq!(capture("/v1/jobs", "//v1/jobs", false), Some(vec![]));
        assert_eq!(capture("/", "/a", false), None);
    }

    #[test]
    fn segments_decode() {
        assert_eq!(decode("a%2Fb"), "a/b");
        assert_eq!(decode("plain"), "plain");
        assert_eq!(decode("bad%zz"), "bad%zz");
        assert_eq!(decode("end%"), "end%");
    }
}
