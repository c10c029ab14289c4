//! The network of each instance: made before its first task starts, on a subnet from the
//! worker's pool, and removed (with the instance's config files) once its last container is
//! gone. A network belongs to its worker by label, and a worker only ever lists, adopts and
//! removes its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::config::WorkerConfig;
use super::container::network_name;
use super::subnets::{self, Ipv4Net};
use crate::api::{Assignment, Desired};
use crate::error::{Error, Result, RuntimeErrorKind};
use crate::ids::{InstanceId, WorkerId};
use crate::runtime::{ContainerInfo, NetworkSpec, Runtime, labels};
use crate::spec::NetworkMode;

/// How many subnets the engine may refuse (because another network it has overlaps them) before
/// the worker gives up on one instance's network.
const MAX_REFUSED_SUBNETS: usize = 64;

/// What the worker knows of networks between two calls, kept under its network lock so that a
/// container start does not ask the engine (which lists every network it has to answer) each
/// time: the instances whose network exists, and the subnets taken (the engine's networks and
/// the host's routes, read when first needed and again after a removal). A stale entry costs
/// one refusal from the engine, never a wrong network.
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// Instances whose network is known to exist.
    instances: BTreeSet<String>,
    /// The subnets taken, once read.
    taken: Option<Vec<Ipv4Net>>,
}

impl Known {
    /// Forgets what is known of `instance` (its network was removed, or a start on it failed)
    /// and the subnets taken.
    pub(crate) fn forget(&mut self, instance: &str) {
        self.instances.remove(instance);
        self.taken = None;
    }
}

/// Every subnet the engine has (any network, anyone's), and the host's routes.
async fn taken_subnets<R: Runtime + ?Sized>(rt: &R, config: &WorkerConfig) -> Result<Vec<Ipv4Net>> {
    let mut taken: Vec<Ipv4Net> = rt
        .list_networks(&[])
        .await?
        .iter()
        .flat_map(|n| n.subnets.iter().filter_map(|s| s.parse().ok()))
        .collect();
    if let Some(file) = &config.routes_file {
        match std::fs::read_to_string(file) {
            Ok(text) => taken.extend(subnets::routes_from_proc(&text)),
            Err(e) => {
                tracing::debug!(file = %file.display(), error = %e, "cannot read the host's routes")
            }
        }
    }
    Ok(taken)
}

/// Makes sure the network of `a` exists (unless its job has none), choosing its subnet from the
/// worker's pool. Callers hold the worker's network lock (which guards `known`), so that two
/// instances never pick the same subnet.
pub(crate) async fn ensure<R: Runtime + ?Sized>(
    rt: &R,
    config: &WorkerConfig,
    a: &Assignment,
    known: &mut Known,
) -> Result<()> {
    if a.job.network.mode == NetworkMode::None {
        return Ok(());
    }
    let (worker, instance) = (config.id.as_str(), a.instance.as_str());
    if known.instances.contains(instance) {
        return Ok(());
    }
    let mine = rt
        .list_networks(&[(labels::WORKER, worker), (labels::INSTANCE, instance)])
        .await?;
    if !mine.is_empty() {
        known.instances.insert(instance.to_owned());
        return Ok(());
    }
    let name = network_name(&config.id, &a.instance);
    let prefix = subnets::prefix_for(a.job.tasks.len());
    let mut fresh = known.taken.is_none();
    if fresh {
        known.taken = Some(taken_subnets(rt, config).await?);
    }
    for _ in 0..MAX_REFUSED_SUBNETS {
        let taken = known.taken.get_or_insert_with(Vec::new);
        let Some(subnet) = subnets::next_free(&config.network_pool, prefix, taken) else {
            if !fresh {
                // What was known may hold subnets freed since: read them again, once.
                known.taken = Some(taken_subnets(rt, config).await?);
                fresh = true;
                continue;
            }
            return Err(Error::runtime(
                RuntimeErrorKind::Rejected,
                format!(
                    "the network pool {} has no free /{prefix} left for network {name} (widen it with `worker --network-pool CIDR`)",
                    config.network_pool
                ),
            ));
        };
        let spec = NetworkSpec {
            name: name.clone(),
            subnet: subnet.to_string(),
            labels: BTreeMap::from([
                (labels::WORKER.to_owned(), worker.to_owned()),
                (labels::INSTANCE.to_owned(), instance.to_owned()),
                (labels::JOB.to_owned(), a.job.name.as_str().to_owned()),
                (labels::SUBNET.to_owned(), subnet.to_string()),
            ]),
        };
        match rt.create_network(&spec).await {
            Ok(_) => {
                tracing::debug!(network = %name, %subnet, "network created");
                taken.push(subnet);
                known.instances.insert(instance.to_owned());
                return Ok(());
            }
            // Another worker on the same engine, or a network made meanwhile: the next one.
            Err(Error::Runtime {
                kind: RuntimeErrorKind::SubnetTaken,
                ..
            }) => taken.push(subnet),
            Err(e) => return Err(e),
        }
    }
    Err(Error::runtime(
        RuntimeErrorKind::Rejected,
        format!("the engine refused {MAX_REFUSED_SUBNETS} subnets in a row for network {name}"),
    ))
}

/// Instances whose network and config files can go: not assigned here to run, and without any
/// container left. `leftovers` are the instances that have a network or files.
pub(crate) fn retired(
    held: &BTreeMap<InstanceId, Assignment>,
    containers: &[ContainerInfo],
    leftovers: impl IntoIterator<Item = String>,
) -> BTreeSet<String> {
    let busy: BTreeSet<&str> = containers
        .iter()
        .filter_map(|c| c.label(labels::INSTANCE))
        .collect();
    leftovers
        .into_iter()
        .filter(|i| !busy.contains(i.as_str()))
        .filter(|i| {
            held.get(&InstanceId::new(i.clone()))
                .is_none_or(|a| a.desired == Desired::Stop)
        })
        .collect()
}

/// Removes the network `id` of a retired `instance`, its config files and its secrets; a network that
/// cannot be removed now (an endpoint still attached) is tried again on a later pass.
pub(crate) async fn remove_retired<R: Runtime + ?Sized>(
    rt: &R,
    config: &WorkerConfig,
    id: Option<&str>,
    instance: &str,
) {
    if let Some(id) = id {
        match rt.remove_network(id).await {
            Ok(()) => tracing::debug!(worker = %config.id, %instance, "network removed"),
            Err(e) => {
                tracing::warn!(worker = %config.id, %instance, error = %e, "cannot remove network")
            }
        }
    }
    if let Some(dir) = &config.files_dir {
        super::files::remove_instance(dir, instance);
    }
    if let Some(dir) = &config.secrets_dir {
        super::secrets::remove_instance(dir, instance);
    }
}

/// This worker's networks, as (network id, instance) pairs.
pub(crate) async fn mine<R: Runtime + ?Sized>(
    rt: &R,
    worker: &WorkerId,
) -> Result<Vec<(String, String)>> {
    Ok(rt
        .list_networks(&[(labels::WORKER, worker.as_str())])
        .await?
        .into_iter()
        .filter_map(|n| {
            let instance = n.label(labels::INSTANCE)?.to_owned();
            Some((n.id, instance))
        })
        .collect())
}

/// The instances with config files under `dir`, or secrets under `secrets`.
pub(crate) fn instances_with_files(dir: Option<&Path>, secrets: Option<&Path>) -> Vec<String> {
    let mut out = dir.map(super::files::instances).unwrap_or_default();
    out.extend(secrets.map(super::secrets::instances).unwrap_or_default());
    out
}
