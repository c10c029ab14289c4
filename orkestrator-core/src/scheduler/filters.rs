//! Built-in filters.

use super::parts::Filter;
use super::rejection::{Rejection, Shortfall, Unit};
use super::request::Request;
use crate::api::WorkerSnapshot;

/// Resource fit: CPU, memory and disk needed must be free (total − allocated) on the worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResourceFit;

impl ResourceFit {
    /// Whether the instance fits in what `w` has free (the check without its reason).
    #[inline]
    pub fn fits(req: &Request<'_>, w: &WorkerSnapshot) -> bool {
        w.free().fits(&req.need)
    }
}

impl Filter for ResourceFit {
    fn name(&self) -> &str {
        "resource-fit"
    }

    #[inline]
    fn check(&self, req: &Request<'_>, w: &WorkerSnapshot) -> Result<(), Rejection> {
        match Self::shortfalls(req, w).next() {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    fn check_all(&self, req: &Request<'_>, w: &WorkerSnapshot, out: &mut Vec<Rejection>) {
        out.extend(Self::shortfalls(req, w));
    }
}

impl ResourceFit {
    /// Each resource the worker has too little of free: memory, CPU, disk, in that order.
    fn shortfalls(req: &Request<'_>, w: &WorkerSnapshot) -> impl Iterator<Item = Rejection> {
        let free = w.free();
        let need = req.need;
        let short = |reason: &'static str, need: u64, free: u64, unit| {
            (need > free).then(|| Rejection {
                reason: reason.into(),
                shortfall: Some(Shortfall { need, free, unit }),
            })
        };
        [
            short(
                "insufficient memory",
                need.memory.bytes(),
                free.memory.bytes(),
                Unit::Bytes,
            ),
            short(
                "insufficient cpu",
                need.cpu.millis(),
                free.cpu.millis(),
                Unit::Millicores,
            ),
            short(
                "insufficient disk",
                need.disk.bytes(),
                free.disk.bytes(),
                Unit::Bytes,
            ),
        ]
        .into_iter()
        .flatten()
    }
}

/// Host ports: every host port the job publishes must be unused on the worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostPorts;

impl Filter for HostPorts {
    fn name(&self) -> &str {
        "host-ports"
    }

    fn relevant(&self, req: &Request<'_>) -> bool {
        !req.ports.is_empty()
    }

    #[inline]
    fn check(&self, req: &Request<'_>, w: &WorkerSnapshot) -> Result<(), Rejection> {
        match Self::taken(req, w).next() {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    fn check_all(&self, req: &Request<'_>, w: &WorkerSnapshot, out: &mut Vec<Rejection>) {
        out.extend(Self::taken(req, w));
    }
}

impl HostPorts {
    /// Each host port of the job already in use on the worker.
    fn taken<'a>(
        req: &'a Request<'_>,
        w: &'a WorkerSnapshot,
    ) -> impl Iterator<Item = Rejection> + 'a {
        req.ports
            .iter()
            .filter(|p| w.ports_in_use.contains(p))
            .map(|p| Rejection::new(format!("host port {}/{} in use", p.0, p.1.as_str())))
    }
}

/// Constraints on worker labels: every `constraints` entry of the job must hold on the worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct Constraints;

impl Filter for Constraints {
    fn name(&self) -> &str {
        "constraints"
    }

    fn relevant(&self, req: &Request<'_>) -> bool {
        !req.job.constraints.is_empty()
    }

    #[inline]
    fn check(&self, req: &Request<'_>, w: &WorkerSnapshot) -> Result<(), Rejection> {
        match Self::unmet(req, w).next() {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    fn check_all(&self, req: &Request<'_>, w: &WorkerSnapshot, out: &mut Vec<Rejection>) {
        out.extend(Self::unmet(req, w));
    }
}

impl Constraints {
    /// Each constraint of the job the worker's labels do not meet.
    fn unmet<'a>(
        req: &'a Request<'_>,
        w: &'a WorkerSnapshot,
    ) -> impl Iterator<Item = Rejection> + 'a {
        req.job
            .constraints
            .iter()
            .filter(|c| !c.matches(&w.labels))
            .map(|c| Rejection::new(format!("constraint {c}")))
    }
}

/// Host volumes: every host volume the job mounts must be offered by the worker
/// (`worker --host-volume`), and one that it mounts read-write must not be offered read-only.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostVolumes;

impl Filter for HostVolumes {
    fn name(&self) -> &str {
        "host-volumes"
    }

    fn relevant(&self, req: &Request<'_>) -> bool {
        !req.host_volumes.is_empty()
    }

    fn check(&self, req: &Request<'_>, w: &WorkerSnapshot) -> Result<(), Rejection> {
        match Self::unmet(req, w).next() {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    fn check_all(&self, req: &Request<'_>, w: &WorkerSnapshot, out: &mut Vec<Rejection>) {
        out.extend(Self::unmet(req, w));
    }
}

impl HostVolumes {
    /// Each host volume of the job that the worker does not offer, or offers read-only to a
    /// read-write mount.
    fn unmet<'a>(
        req: &'a Request<'_>,
        w: &'a WorkerSnapshot,
    ) -> impl Iterator<Item = Rejection> + 'a {
        req.host_volumes
            .iter()
            .filter_map(|(name, read_only)| match w.host_volumes.get(name) {
                None => Some(Rejection::new(format!("no host volume {name}"))),
                Some(o) if o.read_only && !read_only => Some(Rejection::new(format!(
                    "host volume {name} offered read-only, mounted read-write"
                ))),
                Some(_) => None,
            })
    }

    /// Why no worker of `workers` can have the job, when it is a host volume that none of them
    /// offers (at all, or writable where the job writes): `no worker offers host volume applogs`.
    pub fn none_offers(req: &Request<'_>, workers: &[WorkerSnapshot]) -> Option<String> {
        let missing: Vec<String> = req
            .host_volumes
            .iter()
            .filter_map(|(name, read_only)| {
                let offered = workers.iter().filter_map(|w| w.host_volumes.get(name));
                let mut offered = offered.peekable();
                if offered.peek().is_none() {
                    Some(name.clone())
                } else if !read_only && offered.all(|o| o.read_only) {
                    Some(format!("{name} read-write"))
                } else {
                    None
                }
            })
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "no worker offers host volume{} {}",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            )
        })
    }
}

/// The hard rules every placement must meet (resource fit, host ports, constraints, host
/// volumes), as the manager re-checks them when it commits a decision.
pub fn check_fit(req: &Request<'_>, worker: &WorkerSnapshot) -> Result<(), Rejection> {
    ResourceFit.check(req, worker)?;
    HostPorts.check(req, worker)?;
    Constraints.check(req, worker)?;
    HostVolumes.check(req, worker)
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;
    use crate::spec::Protocol;

    #[test]
    fn resource_fit_checks_each_dimension_against_free() {
        let j = job_with("cpu: 500m, memory: 256Mi, disk: 1Gi", "");
        let r = Request::new(&j, 0);
        assert!(ResourceFit.check(&r, &worker("a", 1000, 1024, 0)).is_ok());
        let e = ResourceFit
            .check(&r, &worker("a", 1000, 1024, 900))
            .unwrap_err();
        assert_eq!(e.reason, "insufficient memory");
        assert_eq!(e.shortfall.unwrap().free, 124 << 20);
        let e = ResourceFit
            .check(&r, &worker("a", 400, 1024, 0))
            .unwrap_err();
        assert_eq!(e.reason, "insufficient cpu");
        let mut w = worker("a", 1000, 1024, 0);
        w.total.disk = crate::units::ByteSize::mib(512);
        assert_eq!(
            ResourceFit.check(&r, &w).unwrap_err().reason,
            "insufficient disk"
        );
    }

    #[test]
    fn host_ports_collide_per_protocol() {
        let j = job_with("cpu: 100m", "ports: [{container: 80, host: 8080}]");
        let r = Request::new(&j, 0);
        let mut w = worker("a", 1000, 1024, 0);
        assert!(HostPorts.check(&r, &w).is_ok());
        w.ports_in_use.insert((8080, Protocol::Udp));
        assert!(
            HostPorts.check(&r, &w).is_ok(),
            "udp does not collide with tcp"
        );
        w.ports_in_use.insert((8080, Protocol::Tcp));
        assert_eq!(
            HostPorts.check(&r, &w).unwrap_err().reason,
            "host port 8080/tcp in use"
        );
    }

    #[test]
    fn host_volumes_must_be_offered_and_writable_where_written() {
        use crate::api::HostVolumeOffer;
        use crate::spec::{Format, parse_job};
        let j = parse_job(
            "name: j
volumes:
  logs: { type: host, source: applogs }
  conf: { type: host, source: appconf, read_only: true }
tasks: [{ name: t, image: i:1, mounts: [{ volume: logs, path: /l }, { volume: conf, path: /c }] }]",
            Format::Yaml,
        )
        .unwrap();
        let r = Request::new(&j, 0);
        assert!(HostVolumes.relevant(&r));
        let mut w = worker("a", 1000, 1024, 0);
        let mut all = Vec::new();
        HostVolumes.check_all(&r, &w, &mut all);
        let reasons: Vec<String> = all.into_iter().map(|r| r.reason.into_owned()).collect();
        assert_eq!(
            reasons,
            ["no host volume appconf", "no host volume applogs"]
        );
        assert_eq!(
            HostVolumes::none_offers(&r, std::slice::from_ref(&w)).as_deref(),
            Some("no worker offers host volumes appconf, applogs")
        );
        let ro = HostVolumeOffer { read_only: true };
        w.host_volumes.insert("appconf".into(), ro);
        w.host_volumes.insert("applogs".into(), ro);
        assert_eq!(
            HostVolumes.check(&r, &w).unwrap_err().reason,
            "host volume applogs offered read-only, mounted read-write"
        );
        assert_eq!(
            HostVolumes::none_offers(&r, std::slice::from_ref(&w)).as_deref(),
            Some("no worker offers host volume applogs read-write")
        );
        w.host_volumes
            .insert("applogs".into(), HostVolumeOffer::default());
        assert!(
            HostVolumes.check(&r, &w).is_ok(),
            "a read-only offer does for conf"
        );
        assert!(check_fit(&r, &w).is_ok());
        assert!(!HostVolumes.relevant(&Request::new(&job_with("cpu: 100m", ""), 0)));
    }

    #[test]
    fn constraints_match_labels() {
        let j = job_constrained("zone", "a");
        let r = Request::new(&j, 0);
        let mut w = worker("a", 1000, 1024, 0);
        assert_eq!(
            Constraints.check(&r, &w).unwrap_err().reason,
            "constraint zone=a"
        );
        w.labels.insert("zone".into(), "b".into());
        assert!(Constraints.check(&r, &w).is_err());
        w.labels.insert("zone".into(), "a".into());
        assert!(Constraints.check(&r, &w).is_ok());
    }
}
