//! Compose's units (durations, byte sizes, CPU counts) read as docker compose reads them, and
//! rendered in Orkestrator's own job-file units ([`crate::units`]).
//!
//! - Durations follow Go's `time.ParseDuration`, which the Compose schema checks them with:
//!   one or more `<number><unit>` with units `ns`, `us` (or `µs`, `μs`), `ms`, `s`, `m`, `h`;
//!   decimals allowed (`1.5s`); `0` alone is zero. Unlike Go, a sign `-` is refused (no Compose
//!   duration is negative), and a bare number other than `0` is refused with a hint to add a unit.
//!   Fractions of a nanosecond are dropped, as Go drops them.
//! - Byte sizes follow Docker's `RAMInBytes`: a decimal number, an optional space, and an optional
//!   unit `b`, `k`, `m`, `g`, `t`, `p`, each optionally followed by `b`, `i` or `ib` (`kb`, `Ki`,
//!   `KiB`), case-insensitive and always 1024-based; fractions of a byte are dropped, as Docker
//!   drops them (`1.5k` is 1536, `0.3k` is 307).
//! - CPUs are a decimal number of cores, in millicores rounded up.

use std::time::Duration;

/// A Compose duration: Go's time.ParseDuration syntax (`1m30s`, `10s`, `1.5s`, `500ms`, `2h`,
/// `100us`, `0`); a bare number is refused (say to add a unit). Negative refused.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: &[(&str, u128)] = &[
        ("ns", 1),
        ("us", 1_000),
        ("\u{b5}s", 1_000),
        ("\u{3bc}s", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ];
    let hint = "use e.g. 10s, 1m30s, 1.5s, 500ms or 2h";
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("duration {s:?} is negative ({hint})"));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(format!("duration {s:?} is empty ({hint})"));
    }
    let mut rest = t;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (int, frac, after) = split_number(rest)
            .ok_or_else(|| format!("duration {s:?} is not a duration ({hint})"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let unit = &after[..unit_len];
        if unit.is_empty() {
            return Err(if rest.len() == t.len() {
                format!("duration {s:?} has no unit: add one, e.g. {t}s for seconds ({hint})")
            } else {
                format!("duration {s:?} ends in a number with no unit: add one ({hint})")
            });
        }
        let Some(&(_, nanos)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!(
                "duration {s:?} has the unknown unit {unit:?} (units are ns, us, ms, s, m and h; \
                 {hint})"
            ));
        };
        let too_large = || format!("duration {s:?} is too large");
        let whole = parse_int(int)
            .and_then(|i| i.checked_mul(nanos))
            .ok_or_else(too_large)?;
        total = total
            .checked_add(whole)
            .and_then(|t| t.checked_add(scale_fraction(frac, nanos)))
            .ok_or_else(too_large)?;
        // Go's limit: what an int64 of nanoseconds holds.
        if total > i64::MAX as u128 {
            return Err(too_large());
        }
        rest = &after[unit_len..];
    }
    Ok(Duration::from_nanos(total as u64))
}

/// A Compose byte size as Docker reads it: a number with optional unit b, k, kb, m, mb, g, gb
/// (case-insensitive, 1024-based), e.g. `512m`, `1gb`, `1.5g`, `2048`.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let hint = "use e.g. 512m, 1gb, 1.5g or a number of bytes";
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("size {s:?} is negative ({hint})"));
    }
    let not_a_size = || format!("{s:?} is not a size ({hint})");
    let (int, frac, unit) = split_number(t).ok_or_else(not_a_size)?;
    if int.is_empty() {
        // Docker wants a digit before the point.
        return Err(not_a_size());
    }
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut u = unit.as_str();
    let power = match u.chars().next() {
        Some('k') => 1,
        Some('m') => 2,
        Some('g') => 3,
        Some('t') => 4,
        Some('p') => 5,
        _ => 0,
    };
    if power > 0 {
        u = &u[1..];
    }
    u = u.strip_prefix('i').unwrap_or(u);
    u = u.strip_prefix('b').unwrap_or(u);
    if !u.is_empty() {
        return Err(format!(
            "size {s:?} has an unknown unit (units are b, k, kb, m, mb, g, gb, t, tb; {hint})"
        ));
    }
    let mult: u128 = 1 << (10 * power);
    let too_large = || format!("size {s:?} is too large");
    let bytes = parse_int(int)
        .and_then(|i| i.checked_mul(mult))
        .and_then(|b| b.checked_add(scale_fraction(frac, mult)))
        .ok_or_else(too_large)?;
    u64::try_from(bytes).map_err(|_| too_large())
}

/// Compose `cpus` (`"0.5"`, `2`, `1.25`) as millicores (rounded up to whole millicores; refuse
/// negative or non-numbers).
pub(crate) fn parse_cpus(s: &str) -> Result<u32, String> {
    let hint = "use a number of cores such as 0.5, 1 or 2.25";
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("cpus {s:?} is negative ({hint})"));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let (int, frac, after) =
        split_number(t).ok_or_else(|| format!("cpus {s:?} is not a number ({hint})"))?;
    if !after.is_empty() {
        return Err(format!("cpus {s:?} is not a number ({hint})"));
    }
    let too_large = || format!("cpus {s:?} is more than this reader allows ({hint})");
    let whole = parse_int(int)
        .and_then(|i| i.checked_mul(1000))
        .ok_or_else(too_large)?;
    // Millicores from the first three decimals, plus one when any later decimal is not zero.
    let millis = scale_fraction(frac, 1000);
    let round_up = frac.len() > 3 && frac[3..].bytes().any(|b| b != b'0');
    let total = whole + millis + u128::from(round_up);
    u32::try_from(total).map_err(|_| too_large())
}

/// A byte count written in Orkestrator's own unit syntax for job files: exact multiples of
/// Gi/Mi/Ki else plain bytes (e.g. 536870912 -> "512Mi", 1000 -> "1000"). Check
/// orkestrator-core/src/units.rs for how ByteSize parses, and match it so the output parses back.
pub(crate) fn format_bytes(b: u64) -> String {
    if b == 0 {
        return "0".to_owned();
    }
    for (suffix, mult) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if b.is_multiple_of(mult) {
            return format!("{}{suffix}", b / mult);
        }
    }
    b.to_string()
}

/// A duration in Orkestrator's duration syntax for job files (check orkestrator-core/src/units.rs
/// duration parsing, e.g. "1500ms", "10s", "2m"), parsing back to the same value.
///
/// The largest of `h`, `m`, `s`, `ms`, `us`, `ns` that divides the duration exactly, so the text
/// is one number and one unit (`90s`, `1500ms`, `2m`); zero is `0s`.
pub(crate) fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    const UNITS: [(&str, u128); 6] = [
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let (unit, n) = UNITS
        .iter()
        .find(|(_, n)| nanos.is_multiple_of(*n))
        .copied()
        .unwrap_or(("ns", 1));
    format!("{}{unit}", nanos / n)
}

/// Splits a leading unsigned decimal number off `s`: its integer digits, its fraction digits (after
/// a `.`) and the rest. `None` when there is no digit at all (`""`, `"."`, `"s"`).
fn split_number(s: &str) -> Option<(&str, &str, &str)> {
    let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
    let (int, rest) = s.split_at(int_len);
    let (frac, rest) = match rest.strip_prefix('.') {
        Some(r) => {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            r.split_at(n)
        }
        None => ("", rest),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    Some((int, frac, rest))
}

/// The value of a run of ASCII digits (empty is 0), or `None` past `u128`.
fn parse_int(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, d| {
        acc.checked_mul(10)?.checked_add(u128::from(d - b'0'))
    })
}

/// `floor(0.<frac> * mult)` for a run of fraction digits and `mult` at most 10^18. Digits past the
/// 20th are ignored (they are worth less than 10^-2 of the unit's nanosecond or byte).
fn scale_fraction(frac: &str, mult: u128) -> u128 {
    let frac = &frac[..frac.len().min(20)];
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        return 0;
    }
    // frac < 10^20 and mult <= 10^18 keep the product below u128::MAX (about 3.4 * 10^38).
    let num = parse_int(frac).unwrap_or(0);
    num * mult / 10u128.pow(frac.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{ByteSize, parse_duration as orkestrator_duration};
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_as_go_writes_them() {
        let cases = [
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("10s", Duration::from_secs(10)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5s", ms(1500)),
            (".5s", ms(500)),
            ("5.s", Duration::from_secs(5)),
            ("500ms", ms(500)),
            ("2h", Duration::from_secs(7200)),
            ("100us", Duration::from_micros(100)),
            ("100µs", Duration::from_micros(100)),
            ("100μs", Duration::from_micros(100)),
            ("7ns", Duration::from_nanos(7)),
            ("1h5m30s20ms", Duration::from_millis(3_930_020)),
            ("1.5h", Duration::from_secs(5400)),
            ("2m0.25s", ms(120_250)),
            ("1s1s", Duration::from_secs(2)),
            (" 10s ", Duration::from_secs(10)),
            ("+3s", Duration::from_secs(3)),
            ("1.0000000009s", Duration::from_nanos(1_000_000_000)),
            (
                "0.3333333333333333333333333333333333333h",
                Duration::from_nanos(1_199_999_999_999),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn bad_durations() {
        let e = parse_duration("10").unwrap_err();
        assert!(e.contains("no unit: add one, e.g. 10s"), "{e}");
        let e = parse_duration("1.5").unwrap_err();
        assert!(e.contains("no unit"), "{e}");
        let e = parse_duration("1m30").unwrap_err();
        assert!(e.contains("ends in a number with no unit"), "{e}");
        let e = parse_duration("-5s").unwrap_err();
        assert!(e.contains("negative"), "{e}");
        assert!(parse_duration("-0").unwrap_err().contains("negative"));
        let e = parse_duration("1d").unwrap_err();
        assert!(e.contains("unknown unit \"d\""), "{e}");
        let e = parse_duration("10S").unwrap_err();
        assert!(
            e.contains("unknown unit \"S\""),
            "units are case-sensitive, as in Go: {e}"
        );
        for bad in [
            "",
            " ",
            "s",
            ".",
            ".s",
            "1..5s",
            "1 s",
            "ten seconds",
            "1s ms",
            "1e3s",
            "+",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        let e = parse_duration("2562048h").unwrap_err();
        assert!(e.contains("too large"), "{e}");
        assert!(parse_duration("99999999999999999999999999999999999999999h").is_err());
        assert!(parse_duration("2562047h").is_ok());
    }

    #[test]
    fn byte_sizes_as_docker_reads_them() {
        let cases = [
            ("2048", 2048),
            ("0", 0),
            ("512b", 512),
            ("1k", 1024),
            ("1kb", 1024),
            ("1K", 1024),
            ("1KB", 1024),
            ("1Ki", 1024),
            ("1KiB", 1024),
            ("512m", 512 << 20),
            ("512M", 512 << 20),
            ("512mb", 512 << 20),
            ("1gb", 1 << 30),
            ("1G", 1 << 30),
            ("1.5g", 3 << 29),
            ("2t", 2 << 40),
            ("1p", 1 << 50),
            ("1.5k", 1536),
            ("0.3k", 307),
            ("1.0", 1),
            ("1.9", 1),
            ("100 m", 100 << 20),
            (" 64m ", 64 << 20),
        ];
        for (text, want) in cases {
            assert_eq!(parse_bytes(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn bad_byte_sizes() {
        let e = parse_bytes("-1m").unwrap_err();
        assert!(e.contains("negative"), "{e}");
        let e = parse_bytes("12x").unwrap_err();
        assert!(e.contains("unknown unit"), "{e}");
        for bad in [
            "", "m", "mb", ".5m", "1..5m", "1mm", "1bb", "1 kb b", "1  m", "lots", "1e3", "15e",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
        assert!(parse_bytes("16777216t").unwrap_err().contains("too large"));
        assert_eq!(parse_bytes("16777215t"), Ok(16_777_215u64 << 40));
        assert!(parse_bytes("99999999999999999999999999999999999999999").is_err());
    }

    #[test]
    fn cpus_in_millicores() {
        let cases = [
            ("0.5", 500),
            ("2", 2000),
            ("1.25", 1250),
            ("0", 0),
            (".5", 500),
            ("1.", 1000),
            ("0.001", 1),
            ("0.0001", 1),
            ("0.0010000", 1),
            ("1.2501", 1251),
            ("0.3333", 334),
            ("+1", 1000),
            (" 4 ", 4000),
            ("4294967.295", u32::MAX),
        ];
        for (text, want) in cases {
            assert_eq!(parse_cpus(text), Ok(want), "{text:?}");
        }
        assert!(parse_cpus("-1").unwrap_err().contains("negative"));
        assert!(parse_cpus("-0.5").unwrap_err().contains("negative"));
        for bad in [
            "", ".", "one", "1.5.0", "0.5c", "500m", "1e3", "NaN", "inf", "1 2",
        ] {
            let e = parse_cpus(bad).unwrap_err();
            assert!(e.contains("not a number"), "{bad:?}: {e}");
        }
        assert!(parse_cpus("4294967.2951").is_err());
        assert!(parse_cpus("99999999999999999999999999999999999999999").is_err());
    }

    #[test]
    fn bytes_in_orkestrator_units() {
        let cases = [
            (0, "0"),
            (1, "1"),
            (1000, "1000"),
            (1023, "1023"),
            (1024, "1Ki"),
            (1536, "1536"),
            (3 << 10, "3Ki"),
            (1 << 20, "1Mi"),
            (536_870_912, "512Mi"),
            ((1 << 20) + 1024, "1025Ki"),
            (1 << 30, "1Gi"),
            (3 << 29, "1536Mi"),
            (1 << 40, "1024Gi"),
            (u64::MAX, "18446744073709551615"),
            (u64::MAX - 1023, "18014398509481983Ki"),
        ];
        for (b, want) in cases {
            assert_eq!(format_bytes(b), want, "{b}");
            assert_eq!(ByteSize::parse(want).map(ByteSize::bytes), Ok(b), "{want}");
        }
    }

    #[test]
    fn durations_in_orkestrator_units() {
        let cases = [
            (Duration::ZERO, "0s"),
            (ms(1500), "1500ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(5400), "90m"),
            (Duration::from_micros(100), "100us"),
            (Duration::from_micros(1500), "1500us"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_nanos(1_000_000_001), "1000000001ns"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want, "{d:?}");
            assert_eq!(orkestrator_duration(want), Ok(d), "{want}");
        }
    }

    #[test]
    fn compose_durations_carry_over_to_orkestrator() {
        for text in ["1m30s", "1.5s", "500ms", "2h", "100us", "0", "1h5m30s20ms"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(orkestrator_duration(&format_duration(d)), Ok(d), "{text}");
        }
    }

    proptest! {
        #[test]
        fn format_bytes_parses_back(b in any::<u64>()) {
            prop_assert_eq!(ByteSize::parse(&format_bytes(b)).map(ByteSize::bytes), Ok(b));
        }

        #[test]
        fn format_bytes_parses_back_for_round_sizes(n in 0u64..1 << 30, shift in 0u32..34) {
            let b = n.checked_shl(shift).unwrap_or(n);
            prop_assert_eq!(ByteSize::parse(&format_bytes(b)).map(ByteSize::bytes), Ok(b));
        }

        #[test]
        fn format_duration_parses_back(secs in 0u64..9_000_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(orkestrator_duration(&format_duration(d)), Ok(d));
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn unit_parsers_never_panic(s in "[0-9.+\\- a-zA-Zµμ]{0,20}") {
            let _ = parse_duration(&s);
            let _ = parse_bytes(&s);
            let _ = parse_cpus(&s);
        }
    }
}
