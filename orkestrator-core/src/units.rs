//! Human units used in job files: CPU in cores or millicores, sizes in bytes with SI or IEC
//! suffixes, and durations such as `30s` or `5m`.
//!
//! Parsing is strict and never panics; formatting produces the shortest exact form, so that
//! `parse(format(x)) == x` for every value.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CPU quantity in millicores (`1000` = one core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cpu(u64);

impl Cpu {
    /// Zero CPU.
    pub const ZERO: Cpu = Cpu(0);

    /// A quantity of `m` millicores.
    pub const fn from_millis(m: u64) -> Self {
        Cpu(m)
    }

    /// A quantity of whole cores.
    pub const fn from_cores(cores: u64) -> Self {
        Cpu(cores.saturating_mul(1000))
    }

    /// The quantity in millicores.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// The quantity in (fractional) cores.
    pub fn cores(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Saturating addition.
    pub const fn saturating_add(self, o: Cpu) -> Cpu {
        Cpu(self.0.saturating_add(o.0))
    }

    /// Saturating subtraction.
    pub const fn saturating_sub(self, o: Cpu) -> Cpu {
        Cpu(self.0.saturating_sub(o.0))
    }

    /// Parses `"500m"`, `"0.5"`, `"2"` (cores). At most three decimals (millicore precision).
    pub fn parse(s: &str) -> Result<Cpu, String> {
        let hint = || {
            format!(
                "{s:?} is not a CPU quantity (use cores like 0.5 or 2, or millicores like 500m)"
            )
        };
        let t = s.trim();
        if t.starts_with('-') {
            return Err(format!("{s:?} is negative (use e.g. 0.5 or 500m)"));
        }
        if let Some(m) = t.strip_suffix('m') {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_digit()) {
                return Err(hint());
            }
            return m
                .parse::<u64>()
                .map(Cpu)
                .map_err(|_| format!("{s:?} is too large"));
        }
        parse_decimal_scaled(t, 3)
            .and_then(|m| u64::try_from(m).ok())
            .map(Cpu)
            .ok_or_else(|| {
                let decimals = t
                    .split_once('.')
                    .map_or(0, |(_, f)| f.trim_end_matches('0').len());
                if is_decimal(t) && decimals > 3 {
                    format!("{s:?} has more precision than a millicore (use e.g. 0.25 or 250m)")
                } else if is_decimal(t) {
                    format!("{s:?} is too large")
                } else {
                    hint()
                }
            })
    }

    /// Converts a number of cores (as written in a file, e.g. `0.5`).
    pub fn from_cores_f64(cores: f64) -> Result<Cpu, String> {
        if !cores.is_finite() || cores < 0.0 {
            return Err(format!(
                "{cores} is not a CPU quantity (use a positive number of cores like 0.5, or millicores like 500m)"
            ));
        }
        let millis = cores * 1000.0;
        if millis > u64::MAX as f64 / 2.0 {
            return Err(format!("{cores} cores is too large"));
        }
        let rounded = millis.round();
        if (rounded - millis).abs() > 1e-6 {
            return Err(format!(
                "{cores} has more precision than a millicore (use e.g. 0.25 or 250m)"
            ));
        }
        Ok(Cpu(rounded as u64))
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

impl Serialize for Cpu {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cpu {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Scalar::deserialize(d)? {
            Scalar::Str(s) => Cpu::parse(&s),
            Scalar::Int(i) => u64::try_from(i)
                .map_err(|_| format!("{i} is not a CPU quantity (must not be negative)"))
                .map(Cpu::from_cores),
            Scalar::Float(f) => Cpu::from_cores_f64(f),
            Scalar::Bool(b) => Err(format!("{b} is not a CPU quantity (use e.g. 0.5 or 500m)")),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// A size in bytes (memory or disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(u64);

const SIZE_UNITS: &[(&str, u64)] = &[
    ("Ei", 1 << 60),
    ("Pi", 1 << 50),
    ("Ti", 1 << 40),
    ("Gi", 1 << 30),
    ("Mi", 1 << 20),
    ("Ki", 1 << 10),
    ("E", 1_000_000_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("T", 1_000_000_000_000),
    ("G", 1_000_000_000),
    ("M", 1_000_000),
    ("k", 1_000),
    ("K", 1_000),
];

impl ByteSize {
    /// Zero bytes.
    pub const ZERO: ByteSize = ByteSize(0);

    /// A size of `b` bytes.
    pub const fn b(b: u64) -> Self {
        ByteSize(b)
    }

    /// A size of `n` KiB.
    pub const fn kib(n: u64) -> Self {
        ByteSize(n.saturating_mul(1 << 10))
    }

    /// A size of `n` MiB.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n.saturating_mul(1 << 20))
    }

    /// A size of `n` GiB.
    pub const fn gib(n: u64) -> Self {
        ByteSize(n.saturating_mul(1 << 30))
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Saturating addition.
    pub const fn saturating_add(self, o: ByteSize) -> ByteSize {
        ByteSize(self.0.saturating_add(o.0))
    }

    /// Saturating subtraction.
    pub const fn saturating_sub(self, o: ByteSize) -> ByteSize {
        ByteSize(self.0.saturating_sub(o.0))
    }

    /// Parses `"256Mi"`, `"1Gi"`, `"512M"`, `"1.5Gi"` or a plain number of bytes.
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let hint =
            || format!("{s:?} is not a size (use e.g. 256Mi, 1Gi, 512M or a number of bytes)");
        let t = s.trim();
        if t.starts_with('-') {
            return Err(format!("{s:?} is negative (use e.g. 256Mi, 1Gi)"));
        }
        let t = t.strip_suffix('B').unwrap_or(t);
        let (num, mult) = SIZE_UNITS
            .iter()
            .find_map(|(suffix, mult)| t.strip_suffix(suffix).map(|n| (n, *mult)))
            .unwrap_or((t, 1));
        let num = num.trim_end();
        // Up to 9 decimals: exact arithmetic on integers, then scale.
        let scaled = parse_decimal_scaled(num, 9).ok_or_else(|| {
            let decimals = num
                .split_once('.')
                .map_or(0, |(_, f)| f.trim_end_matches('0').len());
            if is_decimal(num) && decimals > 9 {
                format!("{s:?} has more decimals than a size can use (use e.g. 256Mi, 1.5Gi)")
            } else if is_decimal(num) {
                format!("{s:?} is too large")
            } else {
                hint()
            }
        })?;
        let too_large = || format!("{s:?} is too large");
        let scaled_bytes = scaled.checked_mul(mult as u128).ok_or_else(too_large)?;
        if !scaled_bytes.is_multiple_of(1_000_000_000) {
            return Err(format!("{s:?} is not a whole number of bytes"));
        }
        u64::try_from(scaled_bytes / 1_000_000_000)
            .map(ByteSize)
            .map_err(|_| too_large())
    }
}

/// The decimal units sizes print in, largest first: `10GB` reads back as 10 000 000 000 bytes.
const DECIMAL_UNITS: [(&str, u64); 6] = [
    ("EB", 1_000_000_000_000_000_000),
    ("PB", 1_000_000_000_000_000),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("kB", 1_000),
];

impl ByteSize {
    /// The exact form with the largest unit that divides the size: a decimal unit when the size
    /// is a whole multiple of 1000ⁿ and not of 1024ⁿ (`10GB`, not `9765625Ki`), else a binary one
    /// (`1Gi`, `1000Ki`), else plain bytes. `None` for zero.
    fn exact(self) -> Option<(u64, &'static str)> {
        if self.0 == 0 {
            return None;
        }
        // Units from the largest (n = 6) down: the first that divides the size, of each kind.
        let binary = SIZE_UNITS[..6]
            .iter()
            .position(|(_, m)| self.0.is_multiple_of(*m));
        let decimal = DECIMAL_UNITS
            .iter()
            .position(|(_, m)| self.0.is_multiple_of(*m));
        let (suffix, m) = match (binary, decimal) {
            (Some(b), Some(d)) if b <= d => SIZE_UNITS[b],
            (_, Some(d)) => DECIMAL_UNITS[d],
            (Some(b), None) => SIZE_UNITS[b],
            (None, None) => ("", 1),
        };
        Some((self.0 / m, suffix))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exact() {
            None => f.write_str("0"),
            Some((n, suffix)) => write!(f, "{n}{suffix}"),
        }
    }
}

impl ByteSize {
    /// A human-friendly rendering, for messages rather than files: a whole number of decimal
    /// units exactly (`10GB`), else rounded in binary units (`1.5Gi`).
    pub fn human(self) -> String {
        if let Some((n, suffix)) = self.exact()
            && suffix.ends_with('B')
        {
            return format!("{n}{suffix}");
        }
        for (suffix, mult) in SIZE_UNITS.iter().take(6) {
            if self.0 >= *mult {
                let v = self.0 as f64 / *mult as f64;
                return if v.fract() == 0.0 {
                    format!("{v}{suffix}")
                } else {
                    format!("{v:.1}{suffix}")
                };
            }
        }
        format!("{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Scalar::deserialize(d)? {
            Scalar::Str(s) => ByteSize::parse(&s),
            Scalar::Int(i) => u64::try_from(i)
                .map(ByteSize)
                .map_err(|_| format!("{i} is not a size (must not be negative)")),
            Scalar::Float(f) => Err(format!(
                "{f} is not a whole number of bytes (use e.g. 256Mi or 1Gi)"
            )),
            Scalar::Bool(b) => Err(format!("{b} is not a size (use e.g. 256Mi, 1Gi)")),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// Parses a duration such as `30s`, `5m`, `1h30m`, `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|_| format!("{s:?} is not a duration (use e.g. 500ms, 30s, 5m, 1h)"))
}

/// Formats a duration in the shortest exact form `parse_duration` accepts (`1m 30s` → `"1m 30s"`).
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    humantime::format_duration(d).to_string()
}

/// Serde adapter for `Duration` fields written as human durations.
pub(crate) mod duration {
    use super::*;

    /// Serializes as a human duration string.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    /// Deserializes a human duration string, or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Scalar::deserialize(d)? {
            Scalar::Str(s) => parse_duration(&s),
            Scalar::Int(i) => u64::try_from(i)
                .map(Duration::from_secs)
                .map_err(|_| format!("{i} is not a duration (must not be negative)")),
            Scalar::Float(f) => Duration::try_from_secs_f64(f)
                .map_err(|_| format!("{f} is not a duration (use e.g. 30s, 5m)")),
            Scalar::Bool(b) => Err(format!("{b} is not a duration (use e.g. 30s, 5m)")),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// Parses a non-negative decimal number (`"1.25"`) into an integer scaled by `10^scale`, or `None`
/// when it is not a number, is negative, has more than `scale` decimals, or overflows a `u128`.
fn parse_decimal_scaled(s: &str, scale: u32) -> Option<u128> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > scale as usize {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int_v: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac_v: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let frac_scaled = frac_v.checked_mul(10u128.pow(scale - frac.len() as u32))?;
    int_v
        .checked_mul(10u128.pow(scale))?
        .checked_add(frac_scaled)
}

/// Whether `s` looks like a non-negative decimal number (digits with at most one '.').
fn is_decimal(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    !(int.is_empty() && frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// A scalar as it appears in a file: YAML, TOML and JSON may write `0.5`, `"500m"` or `512` for the
/// same field, so unit fields accept any scalar and interpret it themselves.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Str(String),
    Int(i128),
    Float(f64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Scalar, E> {
                i128::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("number is too large"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_forms() {
        assert_eq!(Cpu::parse("500m").unwrap().millis(), 500);
        assert_eq!(Cpu::parse("0.5").unwrap().millis(), 500);
        assert_eq!(Cpu::parse("2").unwrap().millis(), 2000);
        assert_eq!(Cpu::parse(".25").unwrap().millis(), 250);
        assert!(Cpu::parse("0.0005").is_err());
        assert!(Cpu::parse("-1").is_err());
        assert!(Cpu::parse("m").is_err());
        assert!(Cpu::parse("1.5m").is_err());
        assert!(Cpu::parse("").is_err());
        assert_eq!(Cpu::from_millis(1500).to_string(), "1500m");
        assert_eq!(Cpu::from_millis(2000).to_string(), "2");
        assert_eq!(Cpu::from_cores_f64(0.5).unwrap().millis(), 500);
        assert!(Cpu::from_cores_f64(f64::NAN).is_err());
    }

    #[test]
    fn size_forms() {
        assert_eq!(ByteSize::parse("256Mi").unwrap(), ByteSize::mib(256));
        assert_eq!(ByteSize::parse("1Gi").unwrap(), ByteSize::gib(1));
        assert_eq!(ByteSize::parse("512M").unwrap().bytes(), 512_000_000);
        assert_eq!(ByteSize::parse("1.5Gi").unwrap(), ByteSize::mib(1536));
        assert_eq!(ByteSize::parse("1024").unwrap().bytes(), 1024);
        assert_eq!(ByteSize::parse("10MiB").unwrap(), ByteSize::mib(10));
        let err = ByteSize::parse("12Zi").unwrap_err();
        assert_eq!(
            err,
            "\"12Zi\" is not a size (use e.g. 256Mi, 1Gi, 512M or a number of bytes)"
        );
        assert!(ByteSize::parse("0.5").is_err());
        assert!(ByteSize::parse("99999999999Ei").is_err());
        assert_eq!(ByteSize::mib(64).to_string(), "64Mi");
        assert_eq!(ByteSize::b(1536).to_string(), "1536");
        assert_eq!(ByteSize::kib(3).to_string(), "3Ki");
    }

    /// Issue 18, item 8: a size that is a whole multiple of 1000^n and not of 1024^n prints in
    /// decimal units, exactly (`10GB`, not `9765625Ki`), and reads back as the same size.
    #[test]
    fn decimal_sizes_print_in_decimal_units() {
        let cases = [
            (10_000_000_000, "10GB"),
            (512_000_000, "512MB"),
            (1000, "1kB"),
            (1_500_000, "1500kB"),
            (2_000_000_000_000, "2TB"),
            // Binary when a binary unit is as large: 1000Ki is a multiple of 1000 and of 1024.
            (1_024_000, "1000Ki"),
            (1 << 30, "1Gi"),
            (1536, "1536"),
        ];
        for (b, shown) in cases {
            let s = ByteSize::b(b);
            assert_eq!(s.to_string(), shown, "{b}");
            assert_eq!(ByteSize::parse(shown).unwrap(), s, "{shown}");
        }
        assert_eq!(ByteSize::b(10_000_000_000).human(), "10GB");
        assert_eq!(ByteSize::b(416 << 20).human(), "416Mi");
        assert_eq!(ByteSize::b(1_500_000_000).human(), "1500MB");
        assert_eq!(ByteSize::b(1_234_567_890).human(), "1.1Gi");
    }

    #[test]
    fn duration_forms() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("five").is_err());
        for d in [
            Duration::from_millis(1500),
            Duration::from_secs(90),
            Duration::ZERO,
        ] {
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}
