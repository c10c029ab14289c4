//! The file shape as written, before validation: every field optional and every unit a raw
//! scalar, so that validation can report all problems of a file at once with their paths.
//!
//! The shape is generic over how an environment value is read (`V`). JSON and TOML values are
//! typed, so [`Scalar`] keeps them exactly (`8080` stays an integer). YAML infers types from plain
//! text, and inferring would change values (`yes` → `true`, `3.10` → `3.1`, `0x10` → `16`), so
//! YAML reads them as [`YamlText`]: the text exactly as written.
//!
//! Every part that is a mapping in the file is read through [`Mapping`], which refuses anything
//! else: serde's derived structs also read a list as their fields in order, which JSON and TOML
//! would otherwise let through (`resources: [1, 2]` as cpu 1 and memory 2 bytes).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::units::Scalar;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "V: Deserialize<'de>"))]
pub(crate) struct RawJob<V = Scalar> {
    pub name: Option<String>,
    pub count: Option<Scalar>,
    #[serde(default, deserialize_with = "list_of_mappings")]
    pub constraints: Option<Vec<RawConstraint>>,
    #[serde(default, deserialize_with = "list_of_mappings")]
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
#[serde(deny_unknown_fields, bound(deserialize = "V: Deserialize<'de>"))]
pub(crate) struct RawTask<V = Scalar> {
    pub name: Option<String>,
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    #[serde(default, deserialize_with = "mapping")]
    pub env: Option<BTreeMap<String, V>>,
    #[serde(default, deserialize_with = "list_of_mappings")]
    pub ports: Option<Vec<RawPort>>,
    #[serde(default, deserialize_with = "mapping")]
    pub resources: Option<RawResources>,
    #[serde(default, deserialize_with = "mapping")]
    pub restart: Option<RawRestart>,
    #[serde(default, deserialize_with = "mapping")]
    pub health_check: Option<RawHealthCheck>,
    pub user: Option<Scalar>,
    pub read_only: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    #[serde(default, deserialize_with = "mapping")]
    pub http: Option<RawHttpProbe>,
    #[serde(default, deserialize_with = "mapping")]
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
    pub pids: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRestart {
    pub policy: Option<String>,
    pub max_attempts: Option<Scalar>,
    #[serde(default, deserialize_with = "mapping")]
    pub backoff: Option<RawBackoff>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackoff {
    pub initial: Option<Scalar>,
    pub max: Option<Scalar>,
    pub reset_after: Option<Scalar>,
}

/// A part of a job file that is written as a mapping.
pub(crate) trait Part {
    /// The part as the person writing the file knows it, in the words of "expected ...".
    const WHAT: &'static str;
}

impl<V> Part for RawJob<V> {
    const WHAT: &'static str = "a job (a mapping with name and tasks)";
}

impl Part for RawConstraint {
    const WHAT: &'static str = "a constraint (a mapping with label and equals or not_equals)";
}

impl<V> Part for RawTask<V> {
    const WHAT: &'static str = "a task (a mapping with name, image, ...)";
}

impl<V> Part for BTreeMap<String, V> {
    const WHAT: &'static str = "environment variables (a mapping of names to values)";
}

impl Part for RawPort {
    const WHAT: &'static str = "a port (a mapping with container, host, protocol)";
}

impl Part for RawResources {
    const WHAT: &'static str = "resources (a mapping with cpu, memory, disk, pids)";
}

impl Part for RawRestart {
    const WHAT: &'static str = "a restart policy (a mapping with policy, max_attempts, backoff)";
}

impl Part for RawBackoff {
    const WHAT: &'static str = "a backoff (a mapping with initial, max, reset_after)";
}

impl Part for RawHealthCheck {
    const WHAT: &'static str =
        "a health check (a mapping with http, tcp or exec, and interval, timeout, failures)";
}

impl Part for RawHttpProbe {
    const WHAT: &'static str = "an http check (a mapping with port and path)";
}

impl Part for RawTcpProbe {
    const WHAT: &'static str = "a tcp check (a mapping with port)";
}

/// A `T` read from a mapping and nothing else. Anything else (a list, a string, a number) is a
/// shape error that names the part: "invalid type: sequence, expected resources (a mapping with
/// cpu, memory, disk, pids)".
#[derive(Debug)]
pub(crate) struct Mapping<T>(pub T);

impl<'de, T: Part + Deserialize<'de>> Deserialize<'de> for Mapping<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OnlyMaps<T>(PhantomData<T>);
        impl<'de, T: Part + Deserialize<'de>> Visitor<'de> for OnlyMaps<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::WHAT)
            }
            // No `visit_seq`: the default refuses a list with `expecting` as the reason.
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        // `deserialize_any`, not `deserialize_map`: the three formats describe themselves, and
        // YAML's `deserialize_map` says only "expected mapping start", without the part's name.
        d.deserialize_any(OnlyMaps(PhantomData)).map(Mapping)
    }
}

/// An optional part that must be a mapping (`#[serde(default, deserialize_with = "mapping")]`).
fn mapping<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Part + Deserialize<'de>,
{
    Ok(Option::<Mapping<T>>::deserialize(d)?.map(|m| m.0))
}

/// An optional list whose items must be mappings.
fn list_of_mappings<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Part + Deserialize<'de>,
{
    let items = Option::<Vec<Mapping<T>>>::deserialize(d)?;
    Ok(items.map(|v| v.into_iter().map(|m| m.0).collect()))
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
