//! Instance keys: an instance's job and its instance number, and its id (`JOB-INDEX-NUMBER`).

use crate::ids::{InstanceId, JobId};

/// The key of an instance: its job and its instance number (unique in the cluster's lifetime).
pub(crate) type Key = (JobId, u64);

/// An instance's id from its key and index: `JOB-INDEX-NUMBER`.
pub(crate) fn instance_id(job: &JobId, index: u32, number: u64) -> InstanceId {
    InstanceId::for_job(job, index, number)
}

/// The key of an instance id, if it has the shape `JOB-INDEX-NUMBER`.
pub(crate) fn parse_id(id: &InstanceId) -> Option<Key> {
    let mut parts = id.as_str().rsplitn(3, '-');
    let number = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u32>().ok()?;
    let job = parts.next()?;
    Some((JobId::new(job), number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_parse_back_to_their_key() {
        for (job, index, number) in [("web", 0, 0), ("my-job-2", 17, 123_456), ("a-1-2", 3, 9)] {
            let id = instance_id(&JobId::new(job), index, number);
            assert_eq!(parse_id(&id), Some((JobId::new(job), number)), "{id}");
        }
        for bad in ["web", "web-1", "web-x-1", "web-1-x", ""] {
            assert_eq!(parse_id(&InstanceId::new(bad)), None, "{bad}");
        }
    }
}
