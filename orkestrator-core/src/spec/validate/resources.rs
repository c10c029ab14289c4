//! A task's resources: CPU, memory and disk.

use super::limits::{MAX_CPU, MAX_DISK, MAX_MEMORY, MIN_CPU, MIN_MEMORY, Rules};
use super::scalars::{scalar_cpu, scalar_size};
use crate::spec::model::Resources;
use crate::spec::problems::Problems;
use crate::spec::raw::RawResources;
use crate::units::{ByteSize, Cpu, Scalar};

pub(super) fn validate_resources(
    p: &mut Problems,
    path: &str,
    rr: Option<RawResources>,
    rules: Rules,
) -> Resources {
    let mut r = Resources::default();
    let Some(rr) = rr else { return r };
    if let Some(s) = rr.cpu {
        let fp = format!("{path}.cpu");
        match scalar_cpu(s) {
            Err(m) => p.push(fp, m),
            Ok(c) if c == Cpu::ZERO => p.push(fp, "must be more than zero (e.g. 100m or 0.5)"),
            Ok(c) if c < MIN_CPU && rules == Rules::Submission => p.push(
                fp,
                format!(
                    "{c} is below the minimum of {MIN_CPU} (the kernel's smallest CPU quota is 1ms per 100ms period); ask for at least {MIN_CPU}"
                ),
            ),
            Ok(c) if c > MAX_CPU => p.push(
                fp,
                format!("{c} is more than the {MAX_CPU} cores allowed (ask for at most {MAX_CPU})"),
            ),
            Ok(c) => r.cpu = c,
        }
    }
    if let Some(s) = rr.memory {
        let fp = format!("{path}.memory");
        let plain = plain_number(&s);
        match scalar_size(s) {
            Err(m) => p.push(fp, m),
            Ok(m) if m < MIN_MEMORY => {
                let fix = match plain {
                    Some(n)
                        if n > 0
                            && ByteSize::mib(n) >= MIN_MEMORY
                            && ByteSize::mib(n) <= MAX_MEMORY =>
                    {
                        format!("a plain number counts bytes: did you mean {n}Mi?")
                    }
                    _ => "e.g. 64Mi".to_owned(),
                };
                p.push(
                    fp,
                    format!("{m} is less than the minimum of {MIN_MEMORY} ({fix})"),
                )
            }
            Ok(m) if m > MAX_MEMORY => p.push(
                fp,
                format!("{m} is more than the {MAX_MEMORY} allowed (ask for at most {MAX_MEMORY})"),
            ),
            Ok(m) => r.memory = m,
        }
    }
    if let Some(s) = rr.disk {
        let fp = format!("{path}.disk");
        match scalar_size(s) {
            Err(m) => p.push(fp, m),
            Ok(d) if d == ByteSize::ZERO => p.push(fp, "must be more than zero (e.g. 100Mi)"),
            Ok(d) if d > MAX_DISK => p.push(
                fp,
                format!("{d} is more than the {MAX_DISK} allowed (ask for at most {MAX_DISK})"),
            ),
            Ok(d) => r.disk = d,
        }
    }
    r
}

/// The value of a size written as a plain number of bytes (`64`, or `"64"`), if it is one.
pub(super) fn plain_number(s: &Scalar) -> Option<u64> {
    match s {
        Scalar::Int(i) => u64::try_from(*i).ok(),
        Scalar::Str(t) => t.trim().parse().ok(),
        _ => None,
    }
}
