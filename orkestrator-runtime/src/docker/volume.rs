//! Named volumes on the engine (its local driver): made, listed by label, and removed only when
//! the caller says so.

use bollard::errors::Error as BollardError;
use bollard::models::{Volume, VolumeCreateRequest};
use bollard::query_parameters::{ListVolumesOptions, RemoveVolumeOptions};
use orkestrator_core::error::{Error, Result, RuntimeErrorKind};
use orkestrator_core::runtime::{VolumeInfo, VolumeSpec};

use super::client::{DockerRuntime, label_filters};
use super::error::is_status;

/// What we keep of the engine's answer about a volume.
pub(super) fn volume_info(v: Volume) -> VolumeInfo {
    VolumeInfo {
        name: v.name,
        labels: v.labels.into_iter().collect(),
        mountpoint: Some(v.mountpoint).filter(|m| !m.is_empty()).map(Into::into),
    }
}

impl DockerRuntime {
    pub(super) async fn make_volume(&self, spec: &VolumeSpec) -> Result<VolumeInfo> {
        let docker = self.client().await?;
        let request = VolumeCreateRequest {
            name: Some(spec.name.clone()),
            driver: Some("local".into()),
            labels: Some(
                spec.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            ..Default::default()
        };
        docker
            .create_volume(request)
            .await
            .map(volume_info)
            .map_err(|e| self.error(e, &format!("create volume {}", spec.name)))
    }

    pub(super) async fn drop_volume(&self, name: &str) -> Result<()> {
        let docker = self.client().await?;
        match docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            }) => Err(Error::runtime(
                RuntimeErrorKind::Rejected,
                format!(
                    "cannot remove volume {name}: it is in use ({})",
                    message.trim()
                ),
            )),
            Err(e) => Err(self.error(e, &format!("remove volume {name}"))),
        }
    }

    pub(super) async fn volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<VolumeInfo>> {
        let docker = self.client().await?;
        let filters = label_filters(labels);
        let answer = docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| self.error(e, "list volumes"))?;
        let mut out: Vec<VolumeInfo> = answer
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(volume_info)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
