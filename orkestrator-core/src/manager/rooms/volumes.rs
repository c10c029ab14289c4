//! The volumes room: the named volumes the manager knows of (where each instance index's data
//! lives) and their removal by an operator. Read tokens may list; only operators remove.

use std::sync::Arc;

use crate::api::{VolumeList, VolumeRef, VolumeView};
use crate::ids::{JobId, WorkerId};

use crate::manager::inner::{ApiResult, Inner};
use crate::manager::volumes;

/// The manager's named volumes, from [`Manager::volumes`](crate::manager::Manager::volumes).
#[derive(Clone, Copy)]
pub struct Volumes<'a> {
    inner: &'a Arc<Inner>,
}

impl<'a> Volumes<'a> {
    pub(crate) fn new(inner: &'a Arc<Inner>) -> Self {
        Volumes { inner }
    }

    /// Every named volume, or those of one job: job, index, volume, worker and state.
    pub async fn list(&self, job: Option<&JobId>) -> ApiResult<VolumeList> {
        let (t, list) = self.inner.read(|st| Ok(volumes::list(st, job)))?;
        t.durable().await?;
        Ok(list)
    }

    /// Tells the worker holding a volume to remove it (`orkestrator volume rm`): refused (409)
    /// while an instance that mounts it runs there or its job still wants it (stop the job
    /// first). `worker` may be left out when one worker holds it. The answer shows it
    /// `removing`; it leaves the list once its worker confirms.
    pub async fn remove(&self, of: &VolumeRef, worker: Option<&WorkerId>) -> ApiResult<VolumeView> {
        let (t, view) = self
            .inner
            .write(|st, txn, _, _| volumes::remove(st, txn, of, worker))?;
        t.durable().await?;
        Ok(view)
    }
}
