//! The file shape as written, before validation: every field optional and every unit a raw
//! scalar, so that validation can report all problems of a file at once with their paths.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::units::Scalar;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJob {
    pub name: Option<String>,
    pub tasks: Option<Vec<RawTask>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTask {
    pub name: Option<String>,
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, Scalar>>,
    pub ports: Option<Vec<RawPort>>,
    pub resources: Option<RawResources>,
    pub restart: Option<RawRestart>,
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
