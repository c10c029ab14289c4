//! Typed requests and responses of the manager's API: the same structs travel over HTTP as JSON
//! and through the in-process transport as values.
//!
//! By topic: `errors` (the error answer), `jobs`, `logs`, `workers`, `schedulers`, `health` and
//! `lists` (paging). The wire types sit below everything that uses them: they import only the
//! ids, the clock, the job model, the task lifecycle and [`Usage`](crate::metrics::Usage).

mod errors;
mod health;
mod jobs;
mod lists;
mod logs;
mod schedulers;
mod volumes;
mod workers;

pub use errors::{ApiError, ErrorKind};
pub use health::{HealthReport, ManagerHealth, ManagerPeer, SchedulerView, StoreStats};
pub use jobs::{
    Desired, InstanceView, JobPhase, JobSummary, JobView, SubmitOutcome, SubmitResponse, TaskStatus,
};
pub use lists::{ListQuery, Page};
pub use logs::{ContainerLogs, LogSource, Logs, LogsQuery, parse_since};
pub use schedulers::{
    Decision, DecisionOutcome, DecisionResult, MeasuredUse, PendingInstance, RegisterScheduler,
    SchedulingWork, WorkerSnapshot,
};
pub use volumes::{
    VolumeList, VolumeRecord, VolumeRef, VolumeState, VolumeView, VolumesRemoved, volume_name,
};
pub use workers::{
    Assignment, Assignments, HeartbeatAnswer, HostVolumeOffer, Liveness, RegisterWorker,
    Registered, RejectedUpdate, ReportResponse, TaskUpdate, WorkerHeartbeat, WorkerResources,
    WorkerView,
};

// Kept for the code that still reads the clock through the API (the clock has its own module).
