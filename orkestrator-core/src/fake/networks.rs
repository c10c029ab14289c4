//! The fake runtime's networks, kept as the engine keeps them: a subnet that overlaps another
//! network's is refused ([`RuntimeErrorKind::SubnetTaken`]), a name is unique, and a network with
//! a running container on it cannot be removed. And the log of stops, so that tests can check
//! the order and signal in which containers were asked to stop.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{FakeRuntime, FakeState, info};
use crate::error::{Error, Result, RuntimeErrorKind};
use crate::runtime::{ContainerNetwork, ContainerState, NetworkInfo, NetworkSpec};
use crate::worker::subnets::Ipv4Net;

/// One stop of a running container, as [`FakeRuntime::stops`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRecord {
    /// The container's name.
    pub container: String,
    /// Its task (the task label), if it has one.
    pub task: Option<String>,
    /// The signal it was asked to stop with.
    pub signal: String,
    /// The grace it was given.
    pub grace: Duration,
    /// When (tokio's clock).
    pub at: Instant,
}

impl FakeState {
    pub(super) fn create_network(&mut self, spec: &NetworkSpec) -> Result<String> {
        let subnet: Ipv4Net = spec.subnet.parse().map_err(|_| {
            Error::runtime(
                RuntimeErrorKind::Rejected,
                format!("invalid subnet {:?}", spec.subnet),
            )
        })?;
        if self.networks.values().any(|n| n.name == spec.name) {
            return Err(Error::runtime(
                RuntimeErrorKind::Rejected,
                format!("network with name {} already exists", spec.name),
            ));
        }
        let overlaps = self.networks.values().any(|n| {
            n.subnets
                .iter()
                .filter_map(|s| s.parse::<Ipv4Net>().ok())
                .any(|s| s.overlaps(&subnet))
        });
        if overlaps {
            return Err(Error::runtime(
                RuntimeErrorKind::SubnetTaken,
                format!("pool {subnet} overlaps with another one on this address space"),
            ));
        }
        self.next_id += 1;
        let id = format!("net{:08}", self.next_id);
        self.networks.insert(
            id.clone(),
            NetworkInfo {
                id: id.clone(),
                name: spec.name.clone(),
                labels: spec.labels.clone(),
                subnets: vec![subnet.to_string()],
            },
        );
        Ok(id)
    }

    /// The id of the network called or numbered `key`.
    fn network_id(&self, key: &str) -> Option<String> {
        if self.networks.contains_key(key) {
            return Some(key.to_owned());
        }
        self.networks
            .values()
            .find(|n| n.name == key)
            .map(|n| n.id.clone())
    }

    pub(super) fn remove_network(&mut self, key: &str, now: Instant) -> Result<()> {
        let Some(id) = self.network_id(key) else {
            return Ok(());
        };
        let name = self.networks[&id].name.clone();
        let in_use = self.containers.iter_mut().any(|(cid, c)| {
            matches!(&c.spec.network, ContainerNetwork::Named { name: n, .. } if *n == name)
                && info(cid, c, now).state == ContainerState::Running
        });
        if in_use {
            return Err(Error::runtime(
                RuntimeErrorKind::Rejected,
                format!("network {name} has active endpoints"),
            ));
        }
        self.networks.remove(&id);
        Ok(())
    }

    pub(super) fn list_networks(&self, labels: &[(&str, &str)]) -> Vec<NetworkInfo> {
        self.networks
            .values()
            .filter(|n| labels.iter().all(|(k, v)| n.label(k) == Some(*v)))
            .cloned()
            .collect()
    }

    /// A container may only join a network that exists.
    pub(super) fn check_network(&self, network: &ContainerNetwork) -> Result<()> {
        match network {
            ContainerNetwork::Named { name, .. } if self.network_id(name).is_none() => {
                Err(Error::runtime(
                    RuntimeErrorKind::Rejected,
                    format!("network {name} not found"),
                ))
            }
            _ => Ok(()),
        }
    }
}

impl FakeRuntime {
    /// Every network, as [`Runtime::list_networks`](crate::runtime::Runtime::list_networks)
    /// would list them without a filter.
    pub fn networks(&self) -> Vec<NetworkInfo> {
        self.lock().list_networks(&[])
    }

    /// Adds a network made by someone else (another worker on the same engine, or by hand):
    /// `name` on `subnet`, with `labels`. Returns its id, or the engine's refusal.
    pub fn add_foreign_network(
        &self,
        name: &str,
        subnet: &str,
        labels: &[(&str, &str)],
    ) -> Result<String> {
        let spec = NetworkSpec {
            name: name.to_owned(),
            subnet: subnet.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        };
        self.lock().create_network(&spec)
    }

    /// How many times networks were listed with a filter on label `key`.
    pub fn network_lists_by(&self, key: &str) -> u64 {
        self.lock().network_lists.get(key).copied().unwrap_or(0)
    }

    /// Every stop of a running container so far, in order.
    pub fn stops(&self) -> Vec<StopRecord> {
        self.lock().stops.clone()
    }
}
