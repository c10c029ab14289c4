//! The manager's tokens: who may call it. Kept apart from the state lock so that checking a
//! credential (every request, 10,000 heartbeats a second) takes only a read lock on a hash map,
//! a SHA-256 of 32 bytes and a constant-time compare. Changes are made under the state lock (the
//! order is always state, then tokens) and committed like any other change; a failed commit
//! reloads them from the store with the rest.
//!
//! Dashboard sessions are soft: a random id the browser holds in an HttpOnly cookie, standing
//! for a token until it expires or the token is revoked (checked on every use).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::ApiError;
use crate::auth::{Principal, Role, Subject, TokenParts, TokenRecord, digest};
use crate::clock::Millis;
use crate::store::StoreOp;

use super::commit::Txn;

/// How long a dashboard session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The most dashboard sessions held at once (the oldest go first).
pub const MAX_SESSIONS: usize = 10_000;

/// The credentials the manager knows, by id and by the component they belong to, and the
/// dashboard sessions.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    by_id: HashMap<String, TokenRecord>,
    /// The credential of each worker and scheduler.
    by_subject: HashMap<Subject, String>,
    /// Session digest → (token id, expiry).
    sessions: HashMap<[u8; 32], (String, Instant)>,
}

impl TokenStore {
    pub fn load(records: impl IntoIterator<Item = TokenRecord>) -> Self {
        let mut t = TokenStore::default();
        for r in records {
            t.put(r);
        }
        t
    }

    /// Replaces the durable part (after a failed commit); sessions carry over.
    pub fn replace_durable(&mut self, fresh: TokenStore) {
        self.by_id = fresh.by_id;
        self.by_subject = fresh.by_subject;
    }

    pub fn put(&mut self, r: TokenRecord) {
        if let Some(s) = &r.subject {
            self.by_subject.insert(s.clone(), r.id.clone());
        }
        self.by_id.insert(r.id.clone(), r);
    }

    pub fn remove(&mut self, id: &str) -> Option<TokenRecord> {
        let r = self.by_id.remove(id)?;
        if let Some(s) = &r.subject
            && self.by_subject.get(s).is_some_and(|i| i == id)
        {
            self.by_subject.remove(s);
        }
        Some(r)
    }

    pub fn get(&self, id: &str) -> Option<&TokenRecord> {
        self.by_id.get(id)
    }

    pub fn credential_of(&self, s: &Subject) -> Option<&TokenRecord> {
        self.by_subject.get(s).and_then(|id| self.by_id.get(id))
    }

    pub fn all(&self) -> impl Iterator<Item = &TokenRecord> {
        self.by_id.values()
    }

    /// The principal `token` stands for.
    pub fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        let parts = TokenParts::parse(token)
            .ok_or_else(|| unauthenticated("the token is malformed (tokens read ork.ID.SECRET)"))?;
        match self.by_id.get(parts.id) {
            Some(r) if r.matches(parts.secret) => Ok(principal(r)),
            _ => Err(unauthenticated(
                "the token is not valid here (revoked, or of another cluster)",
            )),
        }
    }

    pub fn open_session(&mut self, session: &str, token: &str, now: Instant) {
        self.sessions
            .retain(|_, (id, until)| *until > now && self.by_id.contains_key(id));
        if self.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(k, _)| *k)
        {
            self.sessions.remove(&oldest);
        }
        self.sessions
            .insert(digest(session), (token.to_owned(), now + SESSION_TTL));
    }

    pub fn close_session(&mut self, session: &str) {
        self.sessions.remove(&digest(session));
    }

    /// The principal a session stands for, while it and its token last.
    pub fn authenticate_session(&self, session: &str, now: Instant) -> Result<Principal, ApiError> {
        match self.sessions.get(&digest(session)) {
            Some((id, until)) if *until > now => match self.by_id.get(id) {
                Some(r) => Ok(principal(r)),
                None => Err(unauthenticated(
                    "the session's token was revoked: sign in again",
                )),
            },
            _ => Err(unauthenticated("the session expired: sign in again")),
        }
    }
}

fn principal(r: &TokenRecord) -> Principal {
    Principal {
        token: r.id.clone(),
        role: r.role.clone(),
        subject: r.subject.clone(),
    }
}

/// A 401.
pub fn unauthenticated(why: &str) -> ApiError {
    ApiError::new(
        crate::api::ErrorKind::Unauthenticated,
        "unauthenticated",
        format!(
            "{why}: send `Authorization: Bearer TOKEN` (the CLI takes --token, --token-file or ORKESTRATOR_TOKEN; on the manager's host it finds the operator token by itself)"
        ),
    )
}

/// A 403.
pub fn forbidden(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(crate::api::ErrorKind::Forbidden, code, message)
}

/// Whether `role` is one a user asked for (operator, read, join).
pub(crate) fn check_user_role(role: &Role) -> Result<(), ApiError> {
    if role.is_user_role() {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_role",
            format!(
                "role: {role} credentials are issued by the manager at registration; create an operator, read or join token"
            ),
        ))
    }
}

/// Issues `subject` a new credential, revoking the one it had. Its creation time is `now`.
pub(crate) fn issue_credential(
    tokens: &mut TokenStore,
    txn: &mut Txn,
    subject: Subject,
    now: Millis,
) -> Result<String, ApiError> {
    if let Some(old) = tokens.credential_of(&subject).map(|r| r.id.clone()) {
        tokens.remove(&old);
        txn.ops.push(StoreOp::DeleteToken(old));
    }
    let role = match subject {
        Subject::Worker(_) => Role::Worker,
        Subject::Scheduler(_) => Role::Scheduler,
    };
    let (record, token) = generate(role, None, Some(subject), now)?;
    txn.ops.push(StoreOp::PutToken(record.clone()));
    tokens.put(record);
    Ok(token)
}

/// A new token record and its text, created at `now`.
pub(crate) fn generate(
    role: Role,
    name: Option<String>,
    subject: Option<Subject>,
    now: Millis,
) -> Result<(TokenRecord, String), ApiError> {
    let (mut record, token) = crate::auth::generate(role, name, subject).map_err(ApiError::from)?;
    record.created_at = now;
    Ok((record, token))
}

/// The 403 of a registration by a token that cannot register `what`.
pub(crate) fn cannot_register(by: &Principal, what: &str) -> ApiError {
    forbidden(
        "forbidden",
        format!(
            "a {} token cannot register {what}: use the join token (--join-token, --join-token-file or ORKESTRATOR_JOIN_TOKEN)",
            by.role
        ),
    )
}
