//! Reports: pure functions of a [`RunSummary`] (text for the terminal, JSON on disk, a
//! self-contained HTML page, JUnit XML for CI).

pub mod html;
pub mod junit;
pub mod text;

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
