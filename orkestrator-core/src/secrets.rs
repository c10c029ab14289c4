//! Secrets: small values (passwords, keys, certificates) that operators give the manager and
//! that are kept encrypted at rest.
//!
//! Each value is sealed with ChaCha20-Poly1305 (`ring`) under the manager's 32-byte key, with a
//! random nonce per seal and the secret's name and version bound as associated data: a sealed
//! value copied to another name or version does not open. The store holds only sealed bytes,
//! and beside them a key check (a known marker sealed under the key) so that a manager given
//! another key refuses to start rather than fail on every secret later.
//!
//! Plaintext lives only in [`SecretValue`]s, whose `Debug` is redacted and whose bytes are
//! zeroed when dropped.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::api::ApiError;
use crate::clock::Millis;
use crate::error::{Error, Result};

/// The most bytes of a secret's name.
pub const MAX_SECRET_NAME: usize = 253;
/// The most bytes of a secret's value (512 KiB).
pub const MAX_SECRET_BYTES: usize = 512 * 1024;
/// The bytes of a secret key.
pub const SECRET_KEY_BYTES: usize = 32;

/// The first byte of every sealed value: the layout (nonce, then ciphertext and tag).
const SEALED_V1: u8 = 1;
/// What the key check seals.
const KEY_CHECK_MARKER: &[u8] = b"orkestrator secret key check v1";
/// The associated data of the key check (no secret's associated data can equal it).
const KEY_CHECK_AD: &[u8] = b"orkestrator/secret-key-check";

/// The answer of every secret operation of a manager without a key (a 503).
pub fn key_missing() -> ApiError {
    ApiError::unavailable(
        "secrets_need_key",
        "secrets need a key: start the manager with --secret-key-file",
    )
}

/// Checks a secret's name: lowercase letters, digits, `-`, `_` and `.`, 1 to 253 bytes.
pub fn check_name(name: &str) -> std::result::Result<(), ApiError> {
    let bad = |why: String| {
        ApiError::bad_request(
            "invalid_secret_name",
            format!(
                "name: {why}; a secret's name is 1 to {MAX_SECRET_NAME} bytes of lowercase letters, digits, '-', '_' and '.' (e.g. db-password)"
            ),
        )
    };
    if name.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if name.len() > MAX_SECRET_NAME {
        return Err(bad(format!("it is {} bytes", name.len())));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
    {
        return Err(bad(format!("{name:?} holds {c:?}")));
    }
    if name == "." || name == ".." {
        return Err(bad(format!("{name:?} is not a file name")));
    }
    Ok(())
}

/// Checks a value's size: at most [`MAX_SECRET_BYTES`].
pub fn check_size(len: usize) -> std::result::Result<(), ApiError> {
    if len > MAX_SECRET_BYTES {
        return Err(ApiError::bad_request(
            "limit_exceeded",
            format!(
                "value: {len} bytes; a secret holds at most {MAX_SECRET_BYTES} bytes (512 KiB)"
            ),
        ));
    }
    Ok(())
}

/// A secret's plaintext. Its `Debug` never shows it, and its bytes are zeroed when dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// A value holding `bytes` (taken, not copied).
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretValue(Zeroizing::new(bytes))
    }

    /// Decodes standard base64 (as the API carries values). The error names `field`.
    pub fn from_base64(field: &str, text: &str) -> std::result::Result<Self, ApiError> {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Self::new)
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid_secret_value",
                    format!("{field}: not valid base64; send the value's bytes in standard base64"),
                )
            })
    }

    /// The plaintext.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<redacted, {} bytes>)", self.0.len())
    }
}

/// The key secrets are sealed with: 32 bytes. Cheap to clone; its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SecretKey {
    key: Arc<LessSafeKey>,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// A key of exactly [`SECRET_KEY_BYTES`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != SECRET_KEY_BYTES {
            return Err(Error::SecretKey(format!(
                "a secret key is {SECRET_KEY_BYTES} bytes, this one is {}",
                bytes.len()
            )));
        }
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .map_err(|_| Error::SecretKey("the key was refused by the cipher".into()))?;
        Ok(SecretKey {
            key: Arc::new(LessSafeKey::new(unbound)),
        })
    }

    /// A key from a key file's contents: 32 raw bytes, or 32 bytes in base64 or hex text (as
    /// `openssl rand -base64 32` or `openssl rand -hex 32` write).
    pub fn from_file_bytes(contents: &[u8]) -> Result<Self> {
        if contents.len() == SECRET_KEY_BYTES {
            return Self::from_bytes(contents);
        }
        let text = std::str::from_utf8(contents).unwrap_or("").trim();
        if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(text)
            && raw.len() == SECRET_KEY_BYTES
        {
            return Self::from_bytes(&Zeroizing::new(raw));
        }
        if text.len() == 2 * SECRET_KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut raw = Zeroizing::new([0u8; SECRET_KEY_BYTES]);
            for (i, pair) in text.as_bytes().chunks(2).enumerate() {
                let hex = std::str::from_utf8(pair).unwrap_or("00");
                raw[i] = u8::from_str_radix(hex, 16).unwrap_or(0);
            }
            return Self::from_bytes(&raw[..]);
        }
        Err(Error::SecretKey(format!(
            "a secret key file holds {SECRET_KEY_BYTES} bytes (raw, or as base64 or hex text); this one holds {} bytes that are none of these",
            contents.len()
        )))
    }

    /// 32 new random bytes for a key file.
    pub fn generate_file_bytes() -> Result<Zeroizing<Vec<u8>>> {
        let mut raw = Zeroizing::new(vec![0u8; SECRET_KEY_BYTES]);
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| Error::System("no randomness for a secret key".into()))?;
        Ok(raw)
    }

    fn seal_raw(&self, ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::System("no randomness for a nonce".into()))?;
        let mut buf = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        buf.push(SEALED_V1);
        buf.extend_from_slice(&nonce);
        let mut body = Zeroizing::new(plaintext.to_vec());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ad),
                &mut *body,
            )
            .map_err(|_| Error::System("sealing a secret failed".into()))?;
        buf.extend_from_slice(&body);
        Ok(buf)
    }

    fn open_raw(&self, ad: &[u8], sealed: &[u8]) -> Option<SecretValue> {
        let (&layout, rest) = sealed.split_first()?;
        if layout != SEALED_V1 || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(ad), &mut buf)
            .ok()?
            .len();
        buf.truncate(len);
        Some(SecretValue(buf))
    }

    /// Seals version `version` of secret `name`.
    pub fn seal(&self, name: &str, version: u64, value: &SecretValue) -> Result<Vec<u8>> {
        self.seal_raw(&associated(name, version), value.as_bytes())
    }

    /// Opens what [`SecretKey::seal`] sealed for the same name and version; an error if the
    /// bytes were sealed under another key, name or version, or were changed.
    pub fn open(&self, name: &str, version: u64, sealed: &[u8]) -> Result<SecretValue> {
        self.open_raw(&associated(name, version), sealed)
            .ok_or_else(|| {
                Error::SecretKey(format!(
                    "version {version} of secret {name} does not open with this key (another key sealed it, or it was changed or moved)"
                ))
            })
    }

    /// A new key check: stored beside the secrets, it tells whether a key is theirs.
    pub fn key_check(&self) -> Result<Vec<u8>> {
        self.seal_raw(KEY_CHECK_AD, KEY_CHECK_MARKER)
    }

    /// Whether `check` (from [`SecretKey::key_check`]) was made with this key.
    pub fn matches_check(&self, check: &[u8]) -> bool {
        self.open_raw(KEY_CHECK_AD, check)
            .is_some_and(|v| v.as_bytes() == KEY_CHECK_MARKER)
    }
}

/// The associated data of a secret's version: its name and version, so that sealed bytes moved
/// to another name or version fail to open.
fn associated(name: &str, version: u64) -> Vec<u8> {
    let mut ad = Vec::with_capacity(name.len() + 32);
    ad.extend_from_slice(b"orkestrator/secret\0");
    ad.extend_from_slice(name.as_bytes());
    ad.push(0);
    ad.extend_from_slice(version.to_string().as_bytes());
    ad
}

/// One version of a secret as the store keeps it: sealed, never plain.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// The secret's name.
    pub name: String,
    /// Its version: 1, then +1 on every update.
    pub version: u64,
    /// The plaintext's size in bytes.
    pub size: u64,
    /// When this version was made.
    pub created_at: Millis,
    /// The sealed value (layout byte, nonce, ciphertext and tag), base64 in JSON.
    #[serde(with = "sealed_base64")]
    pub sealed: Vec<u8>,
}

impl fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRecord")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("size", &self.size)
            .field("created_at", &self.created_at)
            .field("sealed", &format_args!("<{} bytes>", self.sealed.len()))
            .finish()
    }
}

impl SecretRecord {
    /// What the API shows of this version.
    pub fn info(&self) -> SecretVersionInfo {
        SecretVersionInfo {
            version: self.version,
            size: self.size,
            created_at: self.created_at,
        }
    }
}

mod sealed_base64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// What the API shows of one version of a secret (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersionInfo {
    /// The version.
    pub version: u64,
    /// The value's size in bytes.
    pub size: u64,
    /// When it was made, in milliseconds since the Unix epoch.
    pub created_at: Millis,
}

/// What the API shows of a secret (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    /// The name.
    pub name: String,
    /// The latest version.
    pub version: u64,
    /// The latest version's size in bytes.
    pub size: u64,
    /// When the secret was created (its oldest kept version).
    pub created_at: Millis,
    /// When its latest version was made.
    pub updated_at: Millis,
    /// Every kept version, oldest first.
    pub versions: Vec<SecretVersionInfo>,
}

/// The body of `POST /v1/secrets`. Its `Debug` hides the value, which is zeroed when dropped.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSecret {
    /// The secret's name.
    pub name: String,
    /// The value's bytes in standard base64.
    pub value_base64: String,
}

/// The body of `PUT /v1/secrets/{name}`: a new version. Its `Debug` hides the value, which is
/// zeroed when dropped.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSecret {
    /// The new value's bytes in standard base64.
    pub value_base64: String,
}

impl fmt::Debug for CreateSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateSecret")
            .field("name", &self.name)
            .field("value_base64", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for UpdateSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateSecret")
            .field("value_base64", &"<redacted>")
            .finish()
    }
}

impl Drop for CreateSecret {
    fn drop(&mut self) {
        self.value_base64.zeroize();
    }
}

impl Drop for UpdateSecret {
    fn drop(&mut self) {
        self.value_base64.zeroize();
    }
}

/// One secret of a task as the manager delivers it to the worker running the task
/// (`GET /v1/workers/{id}/instances/{instance}/secrets`). Its `Debug` hides the value, which is
/// zeroed when dropped.
#[derive(Clone, Serialize, Deserialize)]
pub struct DeliveredSecret {
    /// The secret's name.
    pub name: String,
    /// The version the instance's job version uses.
    pub version: u64,
    /// The value's bytes in standard base64.
    pub value_base64: String,
}

impl DeliveredSecret {
    /// The value, decoded.
    pub fn value(&self) -> std::result::Result<SecretValue, ApiError> {
        SecretValue::from_base64("value_base64", &self.value_base64)
    }
}

impl fmt::Debug for DeliveredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveredSecret")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("value_base64", &"<redacted>")
            .finish()
    }
}

impl Drop for DeliveredSecret {
    fn drop(&mut self) {
        self.value_base64.zeroize();
    }
}

/// The secrets of one instance's tasks, for the worker it is assigned to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InstanceSecrets {
    /// The instance.
    pub instance: String,
    /// Each task that names secrets, with them in the order the task lists them.
    pub tasks: std::collections::BTreeMap<String, Vec<DeliveredSecret>>,
}

/// Encodes a value for delivery (standard base64); the caller zeroes the text when done.
pub fn encode_value(value: &SecretValue) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SecretKey {
        SecretKey::from_bytes(&[b; 32]).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_name_and_version_only() {
        let v = SecretValue::new(b"hunter2-plaintext".to_vec());
        let sealed = key(1).seal("db-password", 3, &v).unwrap();
        assert!(
            !sealed.windows(v.len()).any(|w| w == v.as_bytes()),
            "the plaintext shows in the sealed bytes"
        );
        assert_eq!(key(1).open("db-password", 3, &sealed).unwrap(), v);
        assert!(key(2).open("db-password", 3, &sealed).is_err(), "wrong key");
        assert!(
            key(1).open("db-passwore", 3, &sealed).is_err(),
            "wrong name"
        );
        assert!(
            key(1).open("db-password", 4, &sealed).is_err(),
            "wrong version"
        );
        let mut changed = sealed.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert!(key(1).open("db-password", 3, &changed).is_err(), "changed");
        // A random nonce per seal: the same value seals differently.
        assert_ne!(sealed, key(1).seal("db-password", 3, &v).unwrap());
    }

    #[test]
    fn the_key_check_tells_keys_apart() {
        let check = key(7).key_check().unwrap();
        assert!(key(7).matches_check(&check));
        assert!(!key(8).matches_check(&check));
        assert!(!key(7).matches_check(b"garbage"));
    }

    #[test]
    fn debug_output_redacts() {
        let v = SecretValue::new(b"s3cr3t-bytes".to_vec());
        assert!(!format!("{v:?}").contains("s3cr3t"));
        let k = key(0x41);
        assert!(!format!("{k:?}").contains("65"), "{k:?}");
        let c = CreateSecret {
            name: "a".into(),
            value_base64: "czNjcjN0".into(),
        };
        assert!(!format!("{c:?}").contains("czNjcjN0"));
        let u = UpdateSecret {
            value_base64: "czNjcjN0".into(),
        };
        assert!(!format!("{u:?}").contains("czNjcjN0"));
        let r = SecretRecord {
            name: "a".into(),
            version: 1,
            size: 3,
            created_at: 0,
            sealed: vec![0xAB; 40],
        };
        assert!(format!("{r:?}").contains("<40 bytes>"));
    }

    #[test]
    fn names_follow_the_rules() {
        for ok in ["db-password", "a", "tls.key", "x_1", &"a".repeat(253)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Db", "a/b", "a b", "é", ".", "..", &"a".repeat(254)] {
            let e = check_name(bad).unwrap_err();
            assert!(e.message.starts_with("name:"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn values_are_held_to_512_kib() {
        assert!(check_size(MAX_SECRET_BYTES).is_ok());
        let e = check_size(MAX_SECRET_BYTES + 1).unwrap_err();
        assert_eq!(e.kind, crate::api::ErrorKind::Invalid);
        assert_eq!(e.code, "limit_exceeded");
        assert!(e.message.contains("512 KiB"));
    }

    #[test]
    fn key_files_take_raw_base64_or_hex() {
        let raw = [9u8; 32];
        let v = SecretValue::new(b"x".to_vec());
        let sealed = SecretKey::from_file_bytes(&raw)
            .unwrap()
            .seal("n", 1, &v)
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw) + "\n";
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        for contents in [b64.as_bytes(), hex.as_bytes()] {
            let k = SecretKey::from_file_bytes(contents).unwrap();
            assert_eq!(k.open("n", 1, &sealed).unwrap(), v);
        }
        let e = SecretKey::from_file_bytes(b"short").unwrap_err();
        assert!(e.to_string().contains("32 bytes"), "{e}");
        assert_eq!(SecretKey::generate_file_bytes().unwrap().len(), 32);
    }
}
