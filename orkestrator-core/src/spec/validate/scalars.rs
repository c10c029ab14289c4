//! Reading raw scalars as CPU, sizes and durations, and showing them in messages.

use std::time::Duration;

use super::limits::MAX_CPU;
use crate::units::{self, ByteSize, Cpu, Scalar};

pub(super) fn scalar_cpu(s: Scalar) -> Result<Cpu, String> {
    match s {
        Scalar::Str(s) => Cpu::parse(&s),
        Scalar::Int(i) if i < 0 => Err(format!("{i} is negative (use e.g. 0.5 or 500m)")),
        Scalar::Int(i) => u64::try_from(i)
            .map(Cpu::from_cores)
            .map_err(|_| format!("{i} is too large (ask for at most {MAX_CPU} cores)")),
        Scalar::Float(f) if f < 0.0 => Err(format!("{f:?} is negative (use e.g. 0.5 or 500m)")),
        Scalar::Float(f) => Cpu::from_cores_f64(f),
        Scalar::Bool(b) => Err(format!(
            "{b} is not a CPU quantity (use cores like 0.5, or millicores like 500m)"
        )),
    }
}

pub(super) fn scalar_size(s: Scalar) -> Result<ByteSize, String> {
    match s {
        Scalar::Str(s) => ByteSize::parse(&s),
        Scalar::Int(i) if i < 0 => Err(format!("{i} is negative (use e.g. 256Mi, 1Gi)")),
        Scalar::Int(i) => u64::try_from(i)
            .map(ByteSize::b)
            .map_err(|_| format!("{i} is too large (use e.g. 256Mi, 1Gi)")),
        Scalar::Float(f) => Err(format!(
            "{f:?} is not a size (use e.g. 256Mi, 1Gi, 512M or a whole number of bytes)"
        )),
        Scalar::Bool(b) => Err(format!("{b} is not a size (use e.g. 256Mi, 1Gi)")),
    }
}

pub(super) fn scalar_duration(s: Scalar) -> Result<Duration, String> {
    match s {
        Scalar::Str(s) => units::parse_duration(&s),
        Scalar::Int(i) if i < 0 => Err(format!("{i} is negative (use e.g. 30s, 5m)")),
        Scalar::Int(i) => u64::try_from(i)
            .map(Duration::from_secs)
            .map_err(|_| format!("{i} is too large (use e.g. 30s, 5m)")),
        Scalar::Float(f) if f < 0.0 => Err(format!("{f:?} is negative (use e.g. 30s, 5m)")),
        Scalar::Float(f) => Duration::try_from_secs_f64(f)
            .map_err(|_| format!("{f:?} is not a duration (use e.g. 30s, 5m)")),
        Scalar::Bool(b) => Err(format!("{b} is not a duration (use e.g. 30s, 5m)")),
    }
}

pub(super) fn show(s: &Scalar) -> String {
    match s {
        Scalar::Str(s) => format!("{s:?}"),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) => format!("{f:?}"),
        Scalar::Bool(b) => b.to_string(),
    }
}
