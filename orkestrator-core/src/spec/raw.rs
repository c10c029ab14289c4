//! The file shape as written, before validation: every field optional and every unit a raw
//! scalar, so that validation can report all problems of a file at once with their paths.
//!
//! The shape is generic over how an environment value is read (`V`). JSON and TOML values are
//! typed, so [`Scalar`] keeps them exactly (`8080` stays an integer). YAML infers types from plain
//! text, and inferring would change values (`yes` → `true`, `3.10` → `3.1`, `0x10` → `16`), so
//! YAML reads them as [`YamlText`]: the text exactly as written.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::units::Scalar;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJob<V = Scalar> {
    pub name: Option<String>,
    pub count: Option<Scalar>,
    pub constraints: Option<Vec<RawConstraint>>,
    pub tasks: Option<Vec<RawTask<V>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConstraint {
    pub label: Option<String>,
    pub equals: Option<String>,
    pub not_equals: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTask<V = Scalar> {
    pub name: Option<String>,
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, V>>,
    pub ports: Option<Vec<RawPort>>,
    pub resources: Option<RawResources>,
    pub restart: Option<RawRestart>,
    pub health_check: Option<RawHealthCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    pub http: Option<RawHttpProbe>,
    pub tcp: Option<RawTcpProbe>,
    pub exec: Option<Vec<String>>,
    pub interval: Option<Scalar>,
    pub timeout: Option<Scalar>,
    pub failures: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpProbe {
    pub port: Option<Scalar>,
    pub path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTcpProbe {
    pub port: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPort {
    pub container: Option<Scalar>,
    pub host: Option<Scalar>,
    pub protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawResources {
    pub cpu: Option<Scalar>,
    pub memory: Option<Scalar>,
    pub disk: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRestart {
    pub policy: Option<String>,
    pub max_attempts: Option<Scalar>,
    pub backoff: Option<RawBackoff>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackoff {
    pub initial: Option<Scalar>,
    pub max: Option<Scalar>,
    pub reset_after: Option<Scalar>,
}

impl TryFrom<RawJob> for super::Job {
    type Error = super::Problems;

    fn try_from(raw: RawJob) -> Result<Self, Self::Error> {
        super::validate::validate(raw)
    }
}

/// An environment value in YAML: the scalar's text as written, never a type inferred from it.
#[derive(Debug)]
pub(crate) struct YamlText(pub String);

impl From<YamlText> for Scalar {
    fn from(t: YamlText) -> Scalar {
        Scalar::Str(t.0)
    }
}

impl<'de> Deserialize<'de> for YamlText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = YamlText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (an environment value)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<YamlText, E> {
                Ok(YamlText(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<YamlText, E> {
                Ok(YamlText(v))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<YamlText, E> {
                Ok(YamlText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<YamlText, E> {
                Ok(YamlText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<YamlText, E> {
                Ok(YamlText(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}
