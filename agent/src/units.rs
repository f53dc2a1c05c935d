//! Units in and out: durations and sizes as people write them, microseconds and counts as
//! reports show them. A leaf: pure functions, no I/O.

use std::time::Duration;

/// Parse "250ms", "1.5s", "2m", "1h30m", "0s".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Some(num) = t
        .strip_suffix('s')
        .filter(|n| n.contains('.') && !n.ends_with('m'))
    {
        if let Ok(x) = num.parse::<f64>() {
            if x >= 0.0 && x.is_finite() {
                return Ok(Duration::from_secs_f64(x));
            }
        }
    }
    humantime::parse_duration(t).map_err(|e| format!("{e} in {s:?}"))
}

/// "64kb", "1mb", "512" (bytes), "1gib": a size in bytes (k/m/g are powers of 1024).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, u) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let m: u64 = match u.trim() {
        "" | "b" => 1,
        "kb" | "k" | "kib" => 1 << 10,
        "mb" | "m" | "mib" => 1 << 20,
        "gb" | "g" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(m)
}

/// Microseconds in a short human unit: 840us, 4.12ms, 1.30s.
pub fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0}us")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

/// Seconds as a scenario would write them: "10s", "2.5s".
pub fn fmt_secs(secs: f64) -> String {
    let r = (secs * 1000.0).round() / 1000.0;
    if r.fract() == 0.0 {
        format!("{r:.0}s")
    } else {
        format!("{r}s")
    }
}

/// A count with thousands separators.
pub fn fmt_count(n: u64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_bytes("64kb"), Some(65536));
        assert_eq!(parse_bytes("1MiB"), Some(1 << 20));
        assert_eq!(parse_bytes("12"), Some(12));
        assert_eq!(parse_bytes("1 parsec"), None);
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("10 parsecs").is_err());
        assert_eq!(fmt_us(840.0), "840us");
        assert_eq!(fmt_us(4120.0), "4.12ms");
        assert_eq!(fmt_count(1234567), "1,234,567");
    }
}
