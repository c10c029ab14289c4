//! Networks on the engine: the bridge network of each instance, made on the subnet the worker
//! chose, listed by label, and removed.

use bollard::errors::Error as BollardError;
use bollard::models::{Ipam, IpamConfig, Network, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptions;
use orkestrator_core::error::{Error, Result, RuntimeErrorKind};
use orkestrator_core::runtime::{NetworkInfo, NetworkSpec};

use super::client::{DockerRuntime, label_filters};
use super::error::is_status;

/// What the engine says when a subnet overlaps one of its networks' (status 403).
const OVERLAP: &str = "overlaps";

/// The engine's request for `spec`: a bridge on exactly `spec.subnet`.
pub(super) fn create_request(spec: &NetworkSpec) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: spec.name.clone(),
        driver: Some("bridge".into()),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            config: Some(vec![IpamConfig {
                subnet: Some(spec.subnet.clone()),
                ..Default::default()
            }]),
            options: None,
        }),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        ..Default::default()
    }
}

/// What we keep of the engine's answer about a network.
pub(super) fn network_info(n: Network) -> NetworkInfo {
    NetworkInfo {
        id: n.id.unwrap_or_default(),
        name: n.name.unwrap_or_default(),
        labels: n.labels.unwrap_or_default().into_iter().collect(),
        subnets: n
            .ipam
            .and_then(|i| i.config)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.subnet)
            .filter(|s| !s.contains(':'))
            .collect(),
    }
}

impl DockerRuntime {
    pub(super) async fn make_network(&self, spec: &NetworkSpec) -> Result<String> {
        let docker = self.client().await?;
        match docker.create_network(create_request(spec)).await {
            // API 1.41 makes a second network of the same name, with only a warning (the
            // request's duplicate check is gone from newer APIs): undo it, names are unique here.
            Ok(created) if created.warning.contains("already exists") => {
                if let Err(e) = docker.remove_network(&created.id).await {
                    tracing::warn!(network = %spec.name, error = %e, "cannot remove a duplicate network");
                }
                Err(Error::runtime(
                    RuntimeErrorKind::Rejected,
                    format!("network {} already exists on the engine", spec.name),
                ))
            }
            Ok(created) => Ok(created.id),
            Err(BollardError::DockerResponseServerError {
                status_code: 403,
                message,
            }) if message.contains(OVERLAP) => Err(Error::runtime(
                RuntimeErrorKind::SubnetTaken,
                format!(
                    "the engine refused subnet {} for network {}: {}",
                    spec.subnet,
                    spec.name,
                    message.trim()
                ),
            )),
            Err(e) => Err(self.error(e, &format!("create network {}", spec.name))),
        }
    }

    pub(super) async fn drop_network(&self, id: &str) -> Result<()> {
        let docker = self.client().await?;
        match docker.remove_network(id).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(self.error(e, &format!("remove network {id}"))),
        }
    }

    pub(super) async fn networks(&self, labels: &[(&str, &str)]) -> Result<Vec<NetworkInfo>> {
        let docker = self.client().await?;
        let filters = label_filters(labels);
        let options = ListNetworksOptions {
            filters: Some(filters),
        };
        let mut out: Vec<NetworkInfo> = docker
            .list_networks(Some(options))
            .await
            .map_err(|e| self.error(e, "list networks"))?
            .into_iter()
            .map(network_info)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    #[test]
    fn the_request_is_a_bridge_on_the_chosen_subnet_with_labels() {
        let spec = NetworkSpec {
            name: "ork-w1-i1".into(),
            subnet: "10.213.0.8/29".into(),
            labels: BTreeMap::from([("orkestrator.worker".into(), "w1".into())]),
        };
        let r = create_request(&spec);
        assert_eq!(r.name, "ork-w1-i1");
        assert_eq!(r.driver.as_deref(), Some("bridge"));
        let config = r.ipam.unwrap().config.unwrap();
        assert_eq!(config[0].subnet.as_deref(), Some("10.213.0.8/29"));
        assert_eq!(r.labels.unwrap()["orkestrator.worker"], "w1");
        // Nothing an API 1.41 engine would not know.
        let json = serde_json::to_value(create_request(&spec)).unwrap();
        for newer in ["EnableIPv4", "EnableIPv6", "ConfigFrom", "Scope"] {
            assert!(json.get(newer).is_none(), "{newer} in {json}");
        }
    }

    #[test]
    fn network_info_keeps_ipv4_subnets_and_labels() {
        let n = Network {
            id: Some("abc".into()),
            name: Some("n".into()),
            labels: Some(HashMap::from([("k".into(), "v".into())])),
            ipam: Some(Ipam {
                config: Some(vec![
                    IpamConfig {
                        subnet: Some("10.0.0.0/29".into()),
                        ..Default::default()
                    },
                    IpamConfig {
                        subnet: Some("fd00::/64".into()),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let info = network_info(n);
        assert_eq!(info.id, "abc");
        assert_eq!(info.subnets, ["10.0.0.0/29"]);
        assert_eq!(info.label("k"), Some("v"));
    }
}
