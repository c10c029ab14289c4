//! Why a worker cannot take an instance ([`Rejection`], with its [`Shortfall`]), and the one-line
//! explanation that groups the rejections of every worker ([`Explanation`]).

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::units::{ByteSize, Cpu};

/// Why a worker was filtered out. Cheap to make: no allocation for the built-in reasons, so a full
/// scan of thousands of workers stays fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The reason, the same for every worker rejected the same way (it groups explanations).
    pub reason: Cow<'static, str>,
    /// For a resource shortfall: how much is needed and how much this worker has free.
    pub shortfall: Option<Shortfall>,
}

impl Rejection {
    /// A rejection with a fixed reason.
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Rejection {
            reason: reason.into(),
            shortfall: None,
        }
    }
}

/// A resource shortfall: need vs. free on one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// What the instance needs.
    pub need: u64,
    /// What the worker has free.
    pub free: u64,
    /// How to print the numbers.
    pub unit: Unit,
}

/// Units of a [`Shortfall`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Millicores.
    Millicores,
    /// Bytes.
    Bytes,
}

impl Unit {
    /// `v` in this unit, as people read it.
    pub(super) fn show(self, v: u64) -> String {
        match self {
            Unit::Millicores => Cpu::from_millis(v).to_string(),
            Unit::Bytes => ByteSize::b(v).human(),
        }
    }
}

/// Collects rejections, grouped by reason, and renders them as one line.
#[derive(Debug, Default, Clone)]
pub struct Explanation {
    groups: Vec<Group>,
}

#[derive(Debug, Clone)]
struct Group {
    reason: Cow<'static, str>,
    count: usize,
    need: u64,
    max_free: u64,
    unit: Option<Unit>,
}

impl Explanation {
    /// Adds one worker's rejection.
    pub fn add(&mut self, r: Rejection) {
        // Built-in reasons are static strings: compare their addresses before their bytes.
        let same = |a: &Cow<'static, str>, b: &Cow<'static, str>| match (a, b) {
            (Cow::Borrowed(x), Cow::Borrowed(y)) if std::ptr::eq(*x, *y) => true,
            _ => a == b,
        };
        if let Some(g) = self.groups.iter_mut().find(|g| same(&g.reason, &r.reason)) {
            g.count += 1;
            if let Some(s) = r.shortfall {
                g.need = g.need.max(s.need);
                g.max_free = g.max_free.max(s.free);
            }
            return;
        }
        let (need, max_free, unit) = match r.shortfall {
            Some(s) => (s.need, s.free, Some(s.unit)),
            None => (0, 0, None),
        };
        self.groups.push(Group {
            reason: r.reason,
            count: 1,
            need,
            max_free,
            unit,
        });
    }

    /// How many workers were rejected.
    pub fn rejected(&self) -> usize {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// Renders `N workers: reason (need X, max free Y); …`, largest group first.
    pub fn render(&self, considered: usize) -> String {
        if considered == 0 {
            return "no ready workers".to_owned();
        }
        let mut groups: Vec<&Group> = self.groups.iter().collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        let mut out = String::new();
        for g in groups {
            if !out.is_empty() {
                out.push_str("; ");
            }
            let _ = write!(
                out,
                "{} worker{}: {}",
                g.count,
                if g.count == 1 { "" } else { "s" },
                g.reason
            );
            if let Some(u) = g.unit {
                let free = if g.count == 1 { "free" } else { "max free" };
                let _ = write!(
                    out,
                    " (need {}, {free} {})",
                    u.show(g.need),
                    u.show(g.max_free)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_group_and_take_the_largest_free() {
        let mut e = Explanation::default();
        let mem = |free| Rejection {
            reason: "insufficient memory".into(),
            shortfall: Some(Shortfall {
                need: 2 << 30,
                free,
                unit: Unit::Bytes,
            }),
        };
        e.add(mem(1 << 30));
        e.add(mem(512 << 20));
        e.add(Rejection::new("constraint zone=a"));
        e.add(mem(256 << 20));
        assert_eq!(e.rejected(), 4);
        assert_eq!(
            e.render(4),
            "3 workers: insufficient memory (need 2Gi, max free 1Gi); 1 worker: constraint zone=a"
        );
        assert_eq!(Explanation::default().render(0), "no ready workers");
    }
}
