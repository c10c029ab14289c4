//! Secrets in the manager itself (no HTTP): created, updated, listed and removed; sealed in the
//! store, never plain; kept across a restart with the same key; a manager with another key
//! refuses to start; without a key every operation answers 503.

use std::sync::Arc;

use orkestrator_core::api::ErrorKind;
use orkestrator_core::manager::{Manager, ManagerConfig};
use orkestrator_core::secrets::{MAX_SECRET_BYTES, SecretKey, SecretValue};
use orkestrator_core::store::MemoryStore;

const PLAIN: &[u8] = b"correct-horse-battery-staple";

fn config(key: Option<u8>) -> ManagerConfig {
    ManagerConfig {
        secret_key: key.map(|b| SecretKey::from_bytes(&[b; 32]).unwrap()),
        ..ManagerConfig::default()
    }
}

async fn manager(store: &Arc<MemoryStore>, key: Option<u8>) -> Manager {
    Manager::new(config(key), store.clone()).await.unwrap()
}

fn value(bytes: &[u8]) -> SecretValue {
    SecretValue::new(bytes.to_vec())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn secrets_are_created_updated_listed_and_removed() {
    let store = Arc::new(MemoryStore::new());
    let m = manager(&store, Some(1)).await;
    let made = m
        .secrets()
        .create("db-password", value(PLAIN))
        .await
        .unwrap();
    assert_eq!(
        (made.name.as_str(), made.version, made.size),
        ("db-password", 1, PLAIN.len() as u64)
    );

    let e = m
        .secrets()
        .create("db-password", value(b"x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(
        e.message.contains("secret update db-password"),
        "{}",
        e.message
    );

    let updated = m
        .secrets()
        .update("db-password", value(b"v2"))
        .await
        .unwrap();
    assert_eq!((updated.version, updated.size), (2, 2));
    // No job uses it: only the newest version is kept.
    assert_eq!(updated.versions.len(), 1);
    assert_eq!(
        m.secrets().value("db-password", None).await.unwrap(),
        value(b"v2")
    );

    // The same value again changes nothing: no new version (compose up updates every time).
    let same = m
        .secrets()
        .update("db-password", value(b"v2"))
        .await
        .unwrap();
    assert_eq!(same.version, 2);
    assert_eq!(same, m.secrets().get("db-password").await.unwrap());
    // A value that only starts like it is another value.
    let longer = m
        .secrets()
        .update("db-password", value(b"v2x"))
        .await
        .unwrap();
    assert_eq!(longer.version, 3);
    m.secrets()
        .update("db-password", value(b"v2"))
        .await
        .unwrap();

    let listed = m.secrets().list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], m.secrets().get("db-password").await.unwrap());
    assert!(!format!("{listed:?}").contains("v2"));

    let e = m.secrets().update("nope", value(b"x")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);

    m.secrets().remove("db-password").await.unwrap();
    assert!(m.secrets().list().await.unwrap().is_empty());
    assert!(store.snapshot().secrets.is_empty());
    let e = m.secrets().remove("db-password").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn bad_names_and_large_values_are_refused_naming_the_field() {
    let store = Arc::new(MemoryStore::new());
    let m = manager(&store, Some(1)).await;
    let e = m.secrets().create("DB", value(b"x")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.message.starts_with("name:"), "{}", e.message);
    let big = vec![b'a'; MAX_SECRET_BYTES + 1];
    let e = m.secrets().create("big", value(&big)).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Invalid, "limit_exceeded")
    );
    assert!(e.message.starts_with("value:"), "{}", e.message);
    m.secrets()
        .create("big", value(&big[..MAX_SECRET_BYTES]))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_store_holds_only_sealed_bytes() {
    let store = Arc::new(MemoryStore::new());
    let m = manager(&store, Some(1)).await;
    m.secrets().create("api-key", value(PLAIN)).await.unwrap();
    let snap = store.snapshot();
    let rec = &snap.secrets[&("api-key".to_owned(), 1)];
    assert!(!contains(&rec.sealed, PLAIN));
    let json = serde_json::to_vec(rec).unwrap();
    assert!(!contains(&json, PLAIN));
    assert!(snap.secret_key_check.is_some(), "the key check is stored");
}

#[tokio::test]
async fn a_restart_with_the_same_key_keeps_them_and_another_key_refuses_to_start() {
    let store = Arc::new(MemoryStore::new());
    {
        let m = manager(&store, Some(1)).await;
        m.secrets().create("tls.key", value(PLAIN)).await.unwrap();
    }
    let again = manager(&store, Some(1)).await;
    assert_eq!(again.secrets().list().await.unwrap()[0].name, "tls.key");
    assert_eq!(
        again.secrets().value("tls.key", Some(1)).await.unwrap(),
        value(PLAIN)
    );

    let e = Manager::new(config(Some(2)), store.clone())
        .await
        .err()
        .expect("another key must refuse to start");
    let text = e.to_string();
    assert!(text.contains("--secret-key-file"), "{text}");
    assert!(text.contains("not the key"), "{text}");
}

#[tokio::test]
async fn without_a_key_secret_operations_answer_503() {
    let store = Arc::new(MemoryStore::new());
    {
        let m = manager(&store, Some(1)).await;
        m.secrets().create("kept", value(PLAIN)).await.unwrap();
    }
    // A manager without a key starts (the rest of the cluster works) but serves no secret.
    let m = manager(&store, None).await;
    assert!(!m.secrets().enabled());
    let errors = [
        m.secrets().list().await.unwrap_err(),
        m.secrets().get("kept").await.unwrap_err(),
        m.secrets().create("new", value(b"x")).await.unwrap_err(),
        m.secrets().update("kept", value(b"x")).await.unwrap_err(),
        m.secrets().remove("kept").await.unwrap_err(),
        m.secrets().value("kept", None).await.unwrap_err(),
    ];
    for e in errors {
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert_eq!(
            e.message,
            "secrets need a key: start the manager with --secret-key-file"
        );
    }
    // The sealed versions are still there for a manager with the key.
    assert_eq!(store.snapshot().secrets.len(), 1);
}
