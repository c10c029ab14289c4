//! How a task's container is named and labelled, and how the labels are read back: the labels are
//! what lets a restarted agent find and adopt its containers.

use crate::api::Assignment;
use crate::ids::{InstanceId, WorkerId};
use std::collections::BTreeMap;

use crate::runtime::{ContainerInfo, ContainerNetwork, ContainerSpec, EngineHealthCheck, labels};
use crate::spec::{Job, NetworkMode, Task};

/// The container for one task of one instance: its name, limits, labels, environment (the
/// task's, and `ORK_JOB`, `ORK_TASK`, `ORK_INDEX`, `ORK_INSTANCE`, `ORK_VERSION`, `ORK_WORKER`)
/// and network (the instance's, with the task's name and its `aliases` as aliases), with the
/// task's own labels besides Orkestrator's. The config files' mounts are
/// the agent's to add, once it has written them.
///
/// `attempt` is the container's generation for this task (0 for the first, one more for every
/// restart); it is part of the name, so that a restart never collides with the container it
/// replaces, and it orders a task's containers from newest to oldest.
pub fn container_spec(
    worker: &WorkerId,
    a: &Assignment,
    job: &Job,
    task: &Task,
    attempt: u32,
) -> ContainerSpec {
    let ours: BTreeMap<String, String> = [
        (labels::WORKER, worker.as_str().to_owned()),
        (labels::JOB, job.name.as_str().to_owned()),
        (labels::TASK, task.name.as_str().to_owned()),
        (labels::INSTANCE, a.instance.as_str().to_owned()),
        (labels::ATTEMPT, attempt.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    // The task's labels never override Orkestrator's own (validation refuses their keys anyway).
    let mut labels = task.labels.clone();
    labels.extend(ours);
    let mut env = task.env.clone();
    for (k, v) in [
        ("ORK_JOB", job.name.as_str().to_owned()),
        ("ORK_TASK", task.name.as_str().to_owned()),
        ("ORK_INDEX", a.index.to_string()),
        ("ORK_INSTANCE", a.instance.as_str().to_owned()),
        ("ORK_VERSION", a.version.to_string()),
        ("ORK_WORKER", worker.as_str().to_owned()),
    ] {
        env.insert(k.to_owned(), v);
    }
    let network = match job.network.mode {
        NetworkMode::None => ContainerNetwork::None,
        NetworkMode::Bridge => ContainerNetwork::Named {
            name: network_name(worker, &a.instance),
            aliases: std::iter::once(task.name.as_str())
                .chain(task.aliases.iter().map(String::as_str))
                .map(str::to_owned)
                .collect(),
        },
    };
    ContainerSpec {
        name: format!(
            "ork-{}-{}-{}-{attempt}",
            container_safe(worker.as_str()),
            a.instance,
            task.name
        ),
        image: task.image.clone(),
        command: task.command.clone(),
        env,
        ports: task.ports.clone(),
        resources: task.resources,
        labels,
        pids_limit: task.pids,
        user: task.user.clone(),
        read_only: task.read_only,
        entrypoint: task.entrypoint.clone(),
        working_dir: task.working_dir.clone(),
        init: task.init,
        stop_signal: task.stop_signal.clone(),
        network,
        mounts: Vec::new(),
        shm_size: task.shm_size,
        extra_hosts: task.extra_hosts.clone(),
        engine_health_check: task.health_check.as_ref().and_then(EngineHealthCheck::of),
    }
}

/// The name of the network of `instance` on `worker`.
pub(crate) fn network_name(worker: &WorkerId, instance: &InstanceId) -> String {
    format!("ork-{}-{}", container_safe(worker.as_str()), instance)
}

pub(crate) use crate::ids::engine_safe as container_safe;

/// The instance and task a container was created for (empty when a label is missing).
pub(crate) fn owner(c: &ContainerInfo) -> (&str, &str) {
    (
        c.label(labels::INSTANCE).unwrap_or(""),
        c.label(labels::TASK).unwrap_or(""),
    )
}

/// The container's generation (its attempt label; 0 when missing or unreadable).
pub(crate) fn attempt(c: &ContainerInfo) -> u32 {
    c.label(labels::ATTEMPT)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Desired;
    use crate::ids::InstanceId;
    use crate::runtime::ContainerState;
    use crate::spec::{Format, parse_job};

    #[test]
    fn the_spec_is_named_and_labelled_so_that_it_can_be_adopted() {
        let job = parse_job(
            "name: web\ntasks: [{name: srv, image: img:1}]",
            Format::Yaml,
        )
        .unwrap();
        let a = Assignment {
            instance: InstanceId::new("i7"),
            index: 0,
            desired: Desired::Run,
            job: std::sync::Arc::new(job.clone()),
            ended: vec![],
            version: 1,
        };
        let spec = container_spec(&WorkerId::new("w 1/x"), &a, &job, &job.tasks[0], 3);
        assert_eq!(spec.name, "ork-w_1_x-i7-srv-3");
        assert_eq!(spec.image, "img:1");
        let info = ContainerInfo {
            id: "c".into(),
            name: spec.name.clone(),
            labels: spec.labels.clone(),
            state: ContainerState::Running,
            health: None,
        };
        assert_eq!(owner(&info), ("i7", "srv"));
        assert_eq!(attempt(&info), 3);
        assert_eq!(info.label(labels::WORKER), Some("w 1/x"));
        assert_eq!(info.label(labels::JOB), Some("web"));
    }

    #[test]
    fn the_spec_carries_the_process_limit_user_and_root_filesystem() {
        let job = parse_job(
            "name: web\ntasks:\n  - {name: a, image: img:1}\n  - {name: b, image: img:1, resources: {pids: 50}, user: app, read_only: true}",
            Format::Yaml,
        )
        .unwrap();
        let a = Assignment {
            instance: InstanceId::new("i1"),
            index: 0,
            desired: Desired::Run,
            job: std::sync::Arc::new(job.clone()),
            ended: vec![],
            version: 1,
        };
        let w = WorkerId::new("w1");
        let plain = container_spec(&w, &a, &job, &job.tasks[0], 0);
        assert_eq!(
            (plain.pids_limit, plain.user.as_deref(), plain.read_only),
            (4096, None, false)
        );
        let asked = container_spec(&w, &a, &job, &job.tasks[1], 0);
        assert_eq!(
            (asked.pids_limit, asked.user.as_deref(), asked.read_only),
            (50, Some("app"), true)
        );
    }

    #[test]
    fn containers_without_labels_belong_to_nobody_and_are_attempt_zero() {
        let info = ContainerInfo {
            id: "c".into(),
            name: "n".into(),
            labels: [(labels::ATTEMPT.to_owned(), "x".to_owned())].into(),
            state: ContainerState::Created,
            health: None,
        };
        assert_eq!(owner(&info), ("", ""));
        assert_eq!(attempt(&info), 0);
        assert_eq!(container_safe("a.b-c_d:é"), "a.b-c_d__");
    }
}
