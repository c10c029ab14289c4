//! What a scenario reports: tables for people, bounds checked, and the same figures as JSON.

use std::time::Duration;

use serde_json::{Value, json};

/// Latency percentiles over every sample of a run (sorted samples, microseconds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    /// Number of samples.
    pub n: usize,
    /// Median, µs.
    pub p50: u64,
    /// 99th percentile, µs.
    pub p99: u64,
    /// Largest, µs.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `samples` (sorted here).
    pub fn of(samples: &mut [u32]) -> Self {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = (q * samples.len() as f64).ceil() as usize;
            u64::from(samples[rank.clamp(1, samples.len()) - 1])
        };
        Percentiles {
            n: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: u64::from(samples[samples.len() - 1]),
        }
    }

    /// As JSON (µs).
    pub fn json(&self) -> Value {
        json!({ "n": self.n, "p50_us": self.p50, "p99_us": self.p99, "max_us": self.max })
    }
}

/// Microseconds as a short human figure (`850 µs`, `12.3 ms`, `1.25 s`).
pub fn us(v: u64) -> String {
    if v < 1_000 {
        format!("{v} µs")
    } else if v < 1_000_000 {
        format!("{:.1} ms", v as f64 / 1e3)
    } else {
        format!("{:.2} s", v as f64 / 1e6)
    }
}

/// A duration as a short human figure.
pub fn dur(d: Duration) -> String {
    us(d.as_micros() as u64)
}

/// Bytes as a short human figure (binary units).
pub fn bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut v = b;
    let mut i = 0;
    while v.abs() >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A count with thousands separators.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate per second.
pub fn rate(n: u64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

/// One table of a report.
#[derive(Debug, Clone)]
pub struct Table {
    /// What it shows.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table.
    pub fn new(title: &str, header: &[&str]) -> Self {
        Table {
            title: title.into(),
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// As an aligned Markdown table (pastes into BENCHMARKS.md as it is).
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut width = vec![0; cols];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |r: &Vec<String>| {
            let cells: Vec<String> = (0..cols)
                .map(|i| {
                    let c = r.get(i).map(String::as_str).unwrap_or("");
                    let pad = width[i] - c.chars().count();
                    if i == 0 {
                        format!("{c}{}", " ".repeat(pad))
                    } else {
                        format!("{}{c}", " ".repeat(pad))
                    }
                })
                .collect();
            format!("| {} |", cells.join(" | "))
        };
        let mut out = format!("{}\n\n{}\n", self.title, line(&self.header));
        let rule: Vec<String> = (0..cols)
            .map(|i| {
                if i == 0 {
                    "-".repeat(width[i] + 2)
                } else {
                    format!("{}:", "-".repeat(width[i] + 1))
                }
            })
            .collect();
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

/// A bound a figure must meet.
#[derive(Debug, Clone)]
pub struct Check {
    /// The figure.
    pub what: String,
    /// Its value, as shown.
    pub measured: String,
    /// The bound, as shown.
    pub bound: String,
    /// Whether it holds.
    pub ok: bool,
}

/// Everything a scenario found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Tables to print.
    pub tables: Vec<Table>,
    /// Free-form lines printed under the tables (sizes, notes).
    pub notes: Vec<String>,
    /// Bounds checked.
    pub checks: Vec<Check>,
    /// The figures as JSON.
    pub data: Value,
}

impl Report {
    /// An empty report of `scenario`.
    pub fn new(scenario: &str) -> Self {
        Report {
            scenario: scenario.into(),
            tables: Vec::new(),
            notes: Vec::new(),
            checks: Vec::new(),
            data: json!({}),
        }
    }

    /// Records a bound.
    pub fn check(&mut self, what: &str, measured: String, bound: &str, ok: bool) {
        self.checks.push(Check {
            what: what.into(),
            measured,
            bound: bound.into(),
            ok,
        });
    }

    /// Sets one JSON field of the figures.
    pub fn set(&mut self, key: &str, v: Value) {
        if let Value::Object(m) = &mut self.data {
            m.insert(key.into(), v);
        }
    }

    /// Appends another report's tables, notes, checks and figures (the quick mode's parts).
    pub fn absorb(&mut self, other: Report) {
        self.tables.extend(other.tables);
        self.notes.extend(other.notes);
        self.checks.extend(other.checks);
        self.set(&other.scenario, other.data);
    }

    /// The printed form.
    pub fn render(&self) -> String {
        let mut out = format!("== scale {} ==\n\n", self.scenario);
        for t in &self.tables {
            out.push_str(&t.render());
            out.push('\n');
        }
        for n in &self.notes {
            out.push_str(n);
            out.push('\n');
        }
        if !self.checks.is_empty() {
            let mut t = Table::new("Bounds", &["figure", "measured", "bound", "verdict"]);
            for c in &self.checks {
                let verdict = if c.ok { "met" } else { "NOT MET" };
                t.row(vec![
                    c.what.clone(),
                    c.measured.clone(),
                    c.bound.clone(),
                    verdict.into(),
                ]);
            }
            out.push('\n');
            out.push_str(&t.render());
        }
        out
    }

    /// The JSON form.
    pub fn json(&self) -> Value {
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(
                |c| json!({ "what": c.what, "measured": c.measured, "bound": c.bound, "ok": c.ok }),
            )
            .collect();
        json!({ "scenario": self.scenario, "results": self.data, "checks": checks })
    }

    /// The bounds that failed.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut s: Vec<u32> = (1..=100).rev().collect();
        let p = Percentiles::of(&mut s);
        assert_eq!((p.n, p.p50, p.p99, p.max), (100, 50, 99, 100));
        let mut one = vec![7];
        assert_eq!(Percentiles::of(&mut one).p99, 7);
        assert_eq!(Percentiles::of(&mut []).n, 0);
    }

    #[test]
    fn figures_read_well() {
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(us(850), "850 µs");
        assert_eq!(us(12_340), "12.3 ms");
        assert_eq!(bytes(2048.0), "2.0 KiB");
    }
}
