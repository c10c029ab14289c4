//! The tokens room: the token policy. Who a bearer token or a dashboard session is, signing in
//! and out, operator, read and join tokens (create, list, revoke, bootstrap), and the manager's
//! own credential for workers' endpoints.

use std::sync::Arc;

use crate::api::ApiError;
use crate::auth::{CreateToken, IssuedToken, Principal, Role, TokenInfo};
use crate::store::StoreOp;

use crate::manager::inner::{ApiResult, Inner};
use crate::manager::liveness;
use crate::manager::locks::{read_lock, write_lock};
use crate::manager::tokens::{self as store, check_user_role, forbidden, unauthenticated};

/// The manager's tokens, from [`Manager::tokens`](crate::manager::Manager::tokens).
#[derive(Clone, Copy)]
pub struct Tokens<'a> {
    inner: &'a Arc<Inner>,
}

impl<'a> Tokens<'a> {
    pub(crate) fn new(inner: &'a Arc<Inner>) -> Self {
        Tokens { inner }
    }

    /// Who `token` (a bearer token) is: a 401 for a malformed, unknown or revoked one.
    pub fn authenticate(&self, token: &str) -> ApiResult<Principal> {
        read_lock(&self.inner.tokens).authenticate(token)
    }

    /// Who a dashboard session is, while it and its token last.
    pub fn authenticate_session(&self, session: &str) -> ApiResult<Principal> {
        let now = self.inner.clock.instant();
        read_lock(&self.inner.tokens).authenticate_session(session, now)
    }

    /// Signs in with `token`: a new session id (for an HttpOnly cookie) standing for it, and
    /// what the token is. Component credentials and join tokens cannot sign in.
    pub fn open_session(&self, token: &str) -> ApiResult<(String, TokenInfo)> {
        let mut tokens = write_lock(&self.inner.tokens);
        let p = tokens.authenticate(token)?;
        if !matches!(p.role, Role::Operator | Role::Read) {
            return Err(forbidden(
                "forbidden",
                format!(
                    "a {} token cannot sign in to the dashboard: use an operator or read token",
                    p.role
                ),
            ));
        }
        let info = tokens
            .get(&p.token)
            .map(|r| r.info())
            .ok_or_else(|| unauthenticated("the token was revoked"))?;
        let (_, session) = crate::auth::generate(Role::Read, None, None).map_err(ApiError::from)?;
        tokens.open_session(&session, &p.token, self.inner.clock.instant());
        Ok((session, info))
    }

    /// Signs a dashboard session out.
    pub fn close_session(&self, session: &str) {
        write_lock(&self.inner.tokens).close_session(session);
    }

    /// Whether the token (or session's token) a principal came with still exists: an open stream
    /// of a revoked one ends.
    pub fn still_valid(&self, p: &Principal) -> bool {
        p.token.is_empty() || read_lock(&self.inner.tokens).get(&p.token).is_some()
    }

    /// What the API shows of the token a principal came with.
    pub fn info(&self, p: &Principal) -> ApiResult<TokenInfo> {
        read_lock(&self.inner.tokens)
            .get(&p.token)
            .map(|r| r.info())
            .ok_or_else(|| unauthenticated("the token was revoked"))
    }

    /// Creates an operator, read or join token. Its secret is in the answer and nowhere else.
    pub async fn create(&self, req: CreateToken) -> ApiResult<IssuedToken> {
        check_user_role(&req.role)?;
        if let Some(n) = &req.name {
            liveness::within("name", n.len(), crate::auth::MAX_TOKEN_NAME, "bytes")?;
        }
        let (t, issued) = self.inner.write(|_, txn, _, now| {
            let (record, token) = store::generate(req.role, req.name, None, now.wall)?;
            let info = record.info();
            txn.ops.push(StoreOp::PutToken(record.clone()));
            write_lock(&self.inner.tokens).put(record);
            Ok(IssuedToken { info, token })
        })?;
        t.durable().await?;
        Ok(issued)
    }

    /// Every token and component credential (never their secrets), oldest first.
    pub async fn list(&self) -> ApiResult<Vec<TokenInfo>> {
        let (t, ()) = self.inner.read(|_| Ok(()))?;
        t.durable().await?;
        let mut all: Vec<TokenInfo> = read_lock(&self.inner.tokens)
            .all()
            .map(|r| r.info())
            .collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    /// Revokes a token or credential: it stops working at once (dashboard sessions opened with
    /// it too).
    pub async fn revoke(&self, id: &str) -> ApiResult<TokenInfo> {
        let (t, info) = self.inner.write(|_, txn, _, _| {
            let r = write_lock(&self.inner.tokens)
                .remove(id)
                .ok_or_else(|| ApiError::not_found("token", id))?;
            txn.ops.push(StoreOp::DeleteToken(r.id.clone()));
            Ok(r.info())
        })?;
        t.durable().await?;
        Ok(info)
    }

    /// Creates each `(role, name)` token that the store does not hold yet, all in one commit,
    /// and answers the secrets of those it created (`None` for those that were there). For
    /// several managers on one store: whichever leads first creates the operator and join
    /// tokens; the others never make their own.
    pub async fn bootstrap_once(&self, wanted: &[(Role, &str)]) -> ApiResult<Vec<Option<String>>> {
        let (t, made) = self.inner.write(|_, txn, _, now| {
            let mut tokens = write_lock(&self.inner.tokens);
            let mut made = Vec::with_capacity(wanted.len());
            for (role, name) in wanted {
                let there = tokens
                    .all()
                    .any(|r| r.role == *role && r.name.as_deref() == Some(*name));
                if there {
                    made.push(None);
                    continue;
                }
                let (record, token) =
                    store::generate(role.clone(), Some((*name).to_owned()), None, now.wall)?;
                txn.ops.push(StoreOp::PutToken(record.clone()));
                tokens.put(record);
                made.push(Some(token));
            }
            Ok(made)
        })?;
        t.durable().await?;
        Ok(made)
    }

    /// Makes sure a token of `role` named `name` exists whose text is `existing` (read from the
    /// file the server keeps it in). If `existing` is missing or no longer valid, the tokens
    /// of that name are revoked and a new one made; its text is returned to be written out.
    pub async fn bootstrap(
        &self,
        role: Role,
        name: &str,
        existing: Option<&str>,
    ) -> ApiResult<Option<String>> {
        if let Some(text) = existing
            && let Ok(p) = self.authenticate(text)
            && p.role == role
            && self.info(&p).is_ok_and(|i| i.name.as_deref() == Some(name))
        {
            return Ok(None);
        }
        let (t, token) = self.inner.write(|_, txn, _, now| {
            let mut tokens = write_lock(&self.inner.tokens);
            let old: Vec<String> = tokens
                .all()
                .filter(|r| r.role == role && r.name.as_deref() == Some(name))
                .map(|r| r.id.clone())
                .collect();
            for id in old {
                tokens.remove(&id);
                txn.ops.push(StoreOp::DeleteToken(id));
            }
            let (record, token) = store::generate(role, Some(name.to_owned()), None, now.wall)?;
            txn.ops.push(StoreOp::PutToken(record.clone()));
            tokens.put(record);
            Ok(token)
        })?;
        t.durable().await?;
        Ok(Some(token))
    }

    /// Sets the credential the manager presents to workers' endpoints.
    pub fn set_endpoint(&self, token: Option<String>) {
        *write_lock(&self.inner.endpoint_token) = token;
    }

    /// The credential the manager presents to workers' endpoints, if it has one.
    pub fn endpoint(&self) -> Option<String> {
        read_lock(&self.inner.endpoint_token).clone()
    }
}
