//! Who may call the manager: bearer tokens, their roles and what each role may do.
//!
//! A token reads `ork.ID.SECRET`: `ID` (12 hex digits) names it in lists and revocations and is
//! not secret; `SECRET` is 256 random bits in hex. The manager stores only the SHA-256 digest of
//! the secret ([`TokenRecord`]) and compares digests in constant time, so neither the store nor
//! a log holds a usable token. A join token may carry a fourth part, `ork.ID.SECRET.CA`, the
//! SHA-256 digest of the cluster's CA certificate, so that a worker joining with it can verify
//! the manager without a CA file (as Docker Swarm's join tokens do).
//!
//! Roles ([`Role`]): an operator may do everything; a read token every `GET`; a join token only
//! registers workers and schedulers, which then get a credential of their own (a
//! [`Role::Worker`] or [`Role::Scheduler`] token) that acts only as that component.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::Millis;
use crate::ids::{SchedulerId, WorkerId};

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Operator,
    /// Every `GET`, `/metrics` included.
    Read,
    /// Registering workers and schedulers, nothing else.
    Join,
    /// One worker's credential: acts only as that worker.
    Worker,
    /// One scheduler's credential: acts only as that scheduler.
    Scheduler,
    /// The manager's credential for calling workers' endpoints.
    Manager,
}

impl Role {
    /// The role's name as written on the command line and in the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Read => "read",
            Role::Join => "join",
            Role::Worker => "worker",
            Role::Scheduler => "scheduler",
            Role::Manager => "manager",
        }
    }

    /// Whether users may create tokens of this role (`token create --role`); the others are
    /// issued by the manager itself.
    pub fn is_user_role(&self) -> bool {
        matches!(self, Role::Operator | Role::Read | Role::Join)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "operator" => Role::Operator,
            "read" => Role::Read,
            "join" => Role::Join,
            "worker" => Role::Worker,
            "scheduler" => Role::Scheduler,
            "manager" => Role::Manager,
            _ => {
                return Err(format!("unknown role {s:?} (use operator, read or join)"));
            }
        })
    }
}

/// Whom a credential belongs to, for [`Role::Worker`] and [`Role::Scheduler`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Subject {
    /// A worker.
    Worker(WorkerId),
    /// A scheduler.
    Scheduler(SchedulerId),
}

/// A token as the manager keeps it: never the secret, only its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's public id (the `ID` of `ork.ID.SECRET`).
    pub id: String,
    /// What it may do.
    pub role: Role,
    /// A description given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The component a credential belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// SHA-256 of the secret.
    pub digest: [u8; 32],
    /// When it was created.
    pub created_at: Millis,
}

impl TokenRecord {
    /// What the API shows of it.
    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id.clone(),
            role: self.role.clone(),
            name: self.name.clone(),
            subject: self.subject.as_ref().map(|s| match s {
                Subject::Worker(w) => w.to_string(),
                Subject::Scheduler(s) => s.to_string(),
            }),
            created_at: self.created_at,
        }
    }

    /// Whether `secret` is this token's, in time independent of where they differ.
    pub fn matches(&self, secret: &str) -> bool {
        bool::from(digest(secret).ct_eq(&self.digest))
    }
}

/// What the API shows of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token's public id.
    pub id: String,
    /// What it may do.
    pub role: Role,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The worker or scheduler a credential belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When it was created (Unix milliseconds).
    pub created_at: Millis,
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    /// What the API shows of it from now on.
    pub info: TokenInfo,
    /// The token itself (`ork.ID.SECRET`).
    pub token: String,
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// `operator`, `read` or `join`.
    pub role: Role,
    /// A description (who or what it is for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The longest token description.
pub const MAX_TOKEN_NAME: usize = 256;

/// The prefix every token starts with.
pub const PREFIX: &str = "ork";

/// A token taken apart (borrowing the text it was read from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenParts<'a> {
    /// Its public id.
    pub id: &'a str,
    /// Its secret.
    pub secret: &'a str,
    /// The cluster CA's SHA-256, when a join token carries it.
    pub ca_digest: Option<[u8; 32]>,
}

impl<'a> TokenParts<'a> {
    /// Reads `ork.ID.SECRET` or `ork.ID.SECRET.CA`; `None` for anything else.
    pub fn parse(token: &'a str) -> Option<Self> {
        let mut parts = token.trim().split('.');
        if parts.next()? != PREFIX {
            return None;
        }
        let id = parts.next()?;
        let secret = parts.next()?;
        let ca_digest = match parts.next() {
            Some(ca) => Some(from_hex(ca)?),
            None => None,
        };
        if parts.next().is_some()
            || id.len() != ID_HEX
            || secret.len() != SECRET_HEX
            || !is_hex(id)
            || !is_hex(secret)
        {
            return None;
        }
        Some(TokenParts {
            id,
            secret,
            ca_digest,
        })
    }

    /// The token without its CA digest (what the manager checks).
    pub fn credential(&self) -> String {
        format!("{PREFIX}.{}.{}", self.id, self.secret)
    }
}

const ID_HEX: usize = 12;
const SECRET_HEX: usize = 64;

/// Makes a new token of `role`: its record (to store) and its text (to hand out once).
pub fn generate(
    role: Role,
    name: Option<String>,
    subject: Option<Subject>,
) -> crate::Result<(TokenRecord, String)> {
    let mut id = [0u8; ID_HEX / 2];
    let mut secret = [0u8; SECRET_HEX / 2];
    getrandom::fill(&mut id)
        .and_then(|()| getrandom::fill(&mut secret))
        .map_err(|e| crate::Error::System(format!("no randomness for a token: {e}")))?;
    let (id, secret) = (to_hex(&id), to_hex(&secret));
    let record = TokenRecord {
        id: id.clone(),
        role,
        name,
        subject,
        digest: digest(&secret),
        created_at: crate::clock::now_millis(),
    };
    Ok((record, format!("{PREFIX}.{id}.{secret}")))
}

/// The token with the cluster CA's digest appended (for join tokens on a TLS cluster).
pub fn with_ca_digest(token: &str, ca: &[u8; 32]) -> String {
    match TokenParts::parse(token) {
        Some(p) => format!("{}.{}", p.credential(), to_hex(ca)),
        None => token.to_owned(),
    }
}

/// SHA-256 of a secret.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

/// 32 bytes from 64 hex digits (either case).
pub fn from_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !is_hex(s) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Who made a request, once its credential checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's id (a dashboard session counts as its token).
    pub token: String,
    /// Its role.
    pub role: Role,
    /// The component a credential belongs to.
    pub subject: Option<Subject>,
}

impl Principal {
    /// An operator, for requests that need no check (in-process callers, tests).
    pub fn operator() -> Self {
        Principal {
            token: String::new(),
            role: Role::Operator,
            subject: None,
        }
    }

    /// Whether this is worker `id`'s own credential.
    pub fn is_worker(&self, id: &WorkerId) -> bool {
        matches!(&self.subject, Some(Subject::Worker(w)) if w == id)
    }

    /// Whether this is scheduler `id`'s own credential.
    pub fn is_scheduler(&self, id: &SchedulerId) -> bool {
        matches!(&self.subject, Some(Subject::Scheduler(s)) if s == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_check() {
        let (rec, token) = generate(Role::Read, None, None).unwrap();
        let p = TokenParts::parse(&token).unwrap();
        assert_eq!(p.id, rec.id);
        assert!(rec.matches(p.secret));
        assert!(!rec.matches(&p.secret.replace('a', "b").replace('0', "1")));
        assert_eq!(p.ca_digest, None);
        let (_, other) = generate(Role::Read, None, None).unwrap();
        assert_ne!(token, other, "tokens are random");
    }

    #[test]
    fn join_tokens_carry_the_ca_digest() {
        let (_, token) = generate(Role::Join, None, None).unwrap();
        let ca = digest("a CA certificate");
        let joined = with_ca_digest(&token, &ca);
        let p = TokenParts::parse(&joined).unwrap();
        assert_eq!(p.ca_digest, Some(ca));
        assert_eq!(p.credential(), token);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "ork",
            "ork.abc.def",
            "xyz.0123456789ab.0000000000000000000000000000000000000000000000000000000000000000",
            "ork.0123456789ab.000000000000000000000000000000000000000000000000000000000000000g",
            "ork.0123456789ab.0000000000000000000000000000000000000000000000000000000000000000.12",
            "ork.0123456789ab.0000000000000000000000000000000000000000000000000000000000000000.x.y",
        ] {
            assert!(TokenParts::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn hex_round_trips() {
        let d = digest("x");
        assert_eq!(from_hex(&to_hex(&d)), Some(d));
        assert_eq!(from_hex(&to_hex(&d).to_uppercase()), Some(d));
    }
}
