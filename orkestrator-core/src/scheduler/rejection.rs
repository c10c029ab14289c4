//! Why a worker cannot take an instance ([`Rejection`], with its [`Shortfall`]), and the one-line
//! explanation that groups the workers by the checks they fail ([`Explanation`]).

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

/// Collects each worker's rejections, grouped by the set of checks the worker fails, and renders
/// them as one line: `2 workers: insufficient memory (need 1Gi, max free 416Mi), constraint zone=c`.
#[derive(Debug, Default, Clone)]
pub struct Explanation {
    groups: Vec<Group>,
}

/// Workers that fail the same checks.
#[derive(Debug, Clone)]
struct Group {
    count: usize,
    /// The checks, in the order the filters found them, each with its best figure.
    checks: Vec<Check>,
}

/// One failed check of a group: the reason and, for a shortfall, the need and the most any
/// worker of the group has free.
#[derive(Debug, Clone)]
struct Check {
    reason: Cow<'static, str>,
    figure: Option<Shortfall>,
}

/// Whether two reasons are the same. Built-in reasons are static strings: their addresses are
/// compared before their bytes.
fn same(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

impl Group {
    fn matches(&self, rs: &[Rejection]) -> bool {
        self.checks.len() == rs.len()
            && self
                .checks
                .iter()
                .zip(rs)
                .all(|(c, r)| same(&c.reason, &r.reason))
    }

    /// Keeps the largest need and the largest free of each shortfall.
    fn absorb(&mut self, rs: &[Rejection]) {
        self.count += 1;
        for (c, r) in self.checks.iter_mut().zip(rs) {
            match (&mut c.figure, r.shortfall) {
                (Some(f), Some(s)) => {
                    f.need = f.need.max(s.need);
                    f.free = f.free.max(s.free);
                }
                (f @ None, s) => *f = s,
                (Some(_), None) => {}
            }
        }
    }

    fn render(&self, out: &mut String) {
        let _ = write!(
            out,
            "{} worker{}: ",
            self.count,
            if self.count == 1 { "" } else { "s" }
        );
        for (k, c) in self.checks.iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            out.push_str(&c.reason);
            if let Some(f) = c.figure {
                let free = if self.count == 1 { "free" } else { "max free" };
                let _ = write!(
                    out,
                    " (need {}, {free} {})",
                    f.unit.show(f.need),
                    f.unit.show(f.free)
                );
            }
        }
    }
}

impl Explanation {
    /// Adds a worker rejected for one reason.
    pub fn add(&mut self, r: Rejection) {
        self.add_all(std::slice::from_ref(&r));
    }

    /// Adds a worker rejected for every reason of `rejections` (in the order the filters found
    /// them). Workers with the same reasons, in the same order, form one group. A worker with no
    /// reason is not counted.
    pub fn add_all(&mut self, rejections: &[Rejection]) {
        if rejections.is_empty() {
            return;
        }
        if let Some(g) = self.groups.iter_mut().find(|g| g.matches(rejections)) {
            g.absorb(rejections);
            return;
        }
        self.groups.push(Group {
            count: 1,
            checks: rejections
                .iter()
                .map(|r| Check {
                    reason: r.reason.clone(),
                    figure: r.shortfall,
                })
                .collect(),
        });
    }

    /// How many workers were rejected.
    pub fn rejected(&self) -> usize {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// Renders `N workers: reason (need X, max free Y), reason; …`, largest group first (then
    /// in the order of their words).
    pub fn render(&self, considered: usize) -> String {
        if considered == 0 {
            return "no ready workers".to_owned();
        }
        let mut groups: Vec<(usize, String)> = self
            .groups
            .iter()
            .map(|g| {
                let mut line = String::new();
                g.render(&mut line);
                (g.count, line)
            })
            .collect();
        groups.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        groups
            .into_iter()
            .map(|(_, line)| line)
            .collect::<Vec<_>>()
            .join("; ")
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
