//! What the HTTP tests share: an operator token for each manager they serve.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;

use orkestrator_core::auth::{CreateToken, Role};
use orkestrator_core::manager::Manager;

static TOKENS: Mutex<Option<HashMap<u16, String>>> = Mutex::new(None);

/// Creates a token of `role` on `m`.
pub async fn token(m: &Manager, role: Role) -> String {
    m.tokens()
        .create(CreateToken { role, name: None })
        .await
        .unwrap()
        .token
}

/// Creates an operator token on the manager served on `port` and remembers it for
/// [`token_for`].
pub async fn remember_operator(m: &Manager, port: u16) -> String {
    let t = token(m, Role::Operator).await;
    TOKENS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(port, t.clone());
    t
}

/// The operator token of the manager served on `port`.
pub fn token_for(port: u16) -> String {
    TOKENS
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(&port).cloned())
        .expect("a token for this port")
}

/// `Authorization: Bearer ...` of the manager on `port`, as a header line.
pub fn auth_line(port: u16) -> String {
    format!("Authorization: Bearer {}\r\n", token_for(port))
}
