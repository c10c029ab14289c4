//! Builders shared by the scheduler tests.

use crate::api::WorkerSnapshot;
use crate::ids::WorkerId;
use crate::spec::{Format, Job, Resources, parse_job};
use crate::units::{ByteSize, Cpu};

/// A worker with `cpu` millicores and `mem_mib` MiB, `used_mib` of it allocated, 10Gi disk.
pub fn worker(id: &str, cpu: u64, mem_mib: u64, used_mib: u64) -> WorkerSnapshot {
    WorkerSnapshot {
        id: WorkerId::new(id),
        labels: Default::default(),
        host_volumes: Default::default(),
        total: Resources {
            cpu: Cpu::from_millis(cpu),
            memory: ByteSize::mib(mem_mib),
            disk: ByteSize::gib(10),
        },
        allocated: Resources {
            cpu: Cpu::ZERO,
            memory: ByteSize::mib(used_mib),
            disk: ByteSize::ZERO,
        },
        ports_in_use: Default::default(),
        instances: 0,
        jobs: Default::default(),
        measured: None,
    }
}

/// A one-task job with `resources` (YAML flow mapping body) and `extra` task fields.
pub fn job_with(resources: &str, extra: &str) -> Job {
    parse_job(&format!("name: j\ntasks:\n  - name: t\n    image: a:1\n    resources: {{ {resources} }}\n    {extra}\n"), Format::Yaml)
        .unwrap()
}

/// A job constrained to workers with `label=value`.
pub fn job_constrained(label: &str, value: &str) -> Job {
    parse_job(
        &format!("name: j\nconstraints: [{{ label: {label}, equals: {value} }}]\ntasks:\n  - name: t\n    image: a:1\n"),
        Format::Yaml,
    )
    .unwrap()
}
