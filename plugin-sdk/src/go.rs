//! Go's parsers behind Docker's log options, with Go's error texts, so that a bad option reads
//! exactly as Docker's: `strconv.ParseBool`, `strconv.Atoi`, `strconv.ParseUint`,
//! `time.ParseDuration` (and `Duration.String`), go-units' `FromHumanSize` (decimal: 1k =
//! 1000) and `RAMInBytes` (binary: 1k = 1024).
//!
//! No crate parses these the Go way (Go's duration units include `µs`, its sizes truncate a
//! float, its messages quote with `strconv.Quote`), so they are written out here once for
//! every driver.

use std::fmt;

use thiserror::Error;

/// A value Go refused, worded as Go words it (the value quoted as `strconv.Quote` does).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum GoError {
    #[error("strconv.ParseBool: parsing {}: invalid syntax", Quoted(.0))]
    Bool(String),
    #[error("strconv.Atoi: parsing {}: invalid syntax", Quoted(.0))]
    IntSyntax(String),
    #[error("strconv.Atoi: parsing {}: value out of range", Quoted(.0))]
    IntRange(String),
    #[error("strconv.ParseUint: parsing {}: invalid syntax", Quoted(.0))]
    UintSyntax(String),
    #[error("strconv.ParseUint: parsing {}: value out of range", Quoted(.0))]
    UintRange(String),
    #[error("time: invalid duration {}", Quoted(.0))]
    Duration(String),
    #[error("time: missing unit in duration {}", Quoted(.0))]
    DurationUnitMissing(String),
    #[error("time: unknown unit {} in duration {}", Quoted(unit), Quoted(value))]
    DurationUnit { unit: String, value: String },
    #[error("invalid size: '{0}'")]
    Size(String),
    #[error("invalid suffix: '{0}'")]
    SizeSuffix(String),
    #[error("strconv.ParseFloat: parsing {}: invalid syntax", Quoted(.0))]
    Float(String),
}

/// A string as Go's `strconv.Quote` writes it: in double quotes, with `"` and `\` escaped,
/// control characters as `\n`, `\t`, `\x01` and the like, the rest as is.
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\u{7}' => f.write_str("\\a")?,
                '\u{8}' => f.write_str("\\b")?,
                '\u{c}' => f.write_str("\\f")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\u{b}' => f.write_str("\\v")?,
                c if (c as u32) < 0x20 || c == '\u{7f}' => write!(f, "\\x{:02x}", c as u32)?,
                c if c.is_control() => write!(f, "\\u{:04x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, GoError> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(GoError::Bool(s.to_string())),
    }
}

/// `strconv.Atoi` on a 64-bit platform: an optional sign, then decimal digits.
pub fn atoi(s: &str) -> Result<i64, GoError> {
    use std::num::IntErrorKind;
    s.parse::<i64>().map_err(|e| match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => GoError::IntRange(s.to_string()),
        _ => GoError::IntSyntax(s.to_string()),
    })
}

/// `strconv.ParseUint(s, 10, bits)`.
pub fn parse_uint(s: &str, bits: u32) -> Result<u64, GoError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GoError::UintSyntax(s.to_string()));
    }
    let max = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    match s.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(GoError::UintRange(s.to_string())),
    }
}

const NS_PER: [(&str, u128); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("", 0),
];

/// `time.ParseDuration`, in nanoseconds.
pub fn parse_duration(orig: &str) -> Result<i64, GoError> {
    let invalid = || GoError::Duration(orig.to_string());
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..n];
            s = &rest[n..];
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid());
            }
        } else if int_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        if unit.is_empty() {
            return Err(GoError::DurationUnitMissing(orig.to_string()));
        }
        let per = NS_PER
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, n)| *n)
            .ok_or_else(|| GoError::DurationUnit {
                unit: unit.to_string(),
                value: orig.to_string(),
            })?;
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = whole.checked_mul(per).ok_or_else(invalid)?;
        let mut scale = per;
        for d in frac_part.bytes().take(30) {
            scale /= 10;
            value += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i64::MAX as u128 + u128::from(neg) {
            return Err(invalid());
        }
    }
    Ok(if neg {
        (total as i128).wrapping_neg() as i64
    } else {
        total as i64
    })
}

/// Go's `time.Duration.String`, e.g. "99ms", "1m30s", "-1s".
pub fn duration_string(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let sign = if d < 0 { "-" } else { "" };
    let u = d.unsigned_abs();
    if u < 1_000_000_000 {
        let (body, unit) = if u < 1_000 {
            (u.to_string(), "ns")
        } else if u < 1_000_000 {
            (decimal(u, 3), "\u{b5}s")
        } else {
            (decimal(u, 6), "ms")
        };
        return format!("{sign}{body}{unit}");
    }
    let secs = decimal(u % 60_000_000_000, 9);
    let mins = u / 60_000_000_000;
    let (h, m) = (mins / 60, mins % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{sign}{m}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

/// `v / 10^prec` with its fraction, trailing zeros trimmed.
fn decimal(v: u64, prec: u32) -> String {
    let p = 10u64.pow(prec);
    let frac = v % p;
    if frac == 0 {
        return (v / p).to_string();
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    format!("{}.{}", v / p, digits.trim_end_matches('0'))
}

/// go-units' `RAMInBytes` (binary multiples: 1k = 1024).
pub fn ram_in_bytes(s: &str) -> Result<i64, GoError> {
    let sep = s
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_ascii_digit() || *c == '.' || *c == ' ')
        .map(|(i, _)| i)
        .ok_or_else(|| GoError::Size(s.to_string()))?;
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..sep + 1], &s[sep + 1..])
    };
    let valid_float = !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && num.bytes().filter(|b| *b == b'.').count() <= 1
        && num != ".";
    let size: f64 = if valid_float {
        num.parse().map_err(|_| GoError::Float(num.to_string()))?
    } else {
        return Err(GoError::Float(num.to_string()));
    };
    if sfx.is_empty() {
        return Ok(size as i64);
    }
    let lower = sfx.to_ascii_lowercase();
    let bad = || GoError::SizeSuffix(lower.clone());
    if lower.len() > 3 {
        return Err(bad());
    }
    let b = lower.as_bytes();
    if b[0] == b'b' {
        return if b.len() > 1 {
            Err(bad())
        } else {
            Ok(size as i64)
        };
    }
    let mul: f64 = match b[0] {
        b'k' => 1024f64,
        b'm' => 1024f64.powi(2),
        b'g' => 1024f64.powi(3),
        b't' => 1024f64.powi(4),
        b'p' => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    if (b.len() == 2 && b[1] != b'b') || (b.len() == 3 && &lower[1..] != "ib") {
        return Err(bad());
    }
    Ok((size * mul) as i64)
}

/// go-units' `FromHumanSize` as vendored by dockerd 20.10 (decimal multiples: 1k = 1000):
/// the string must match `(?i)^(\d+(\.\d+)*) ?([kmgtp])?i?b?$`; the number is parsed as a
/// float, multiplied by the unit and truncated to an integer.
pub fn from_human_size(s: &str) -> Result<i64, GoError> {
    let invalid = || GoError::Size(s.to_owned());
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return Err(invalid());
    }
    while i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        if !digits(&mut j) {
            break;
        }
        i = j;
    }
    let number = &s[..i];
    let mut rest = &b[i..];
    if let [b' ', tail @ ..] = rest {
        rest = tail;
    }
    let mut mul = 1i64;
    if let [u, tail @ ..] = rest {
        let unit = match u.to_ascii_lowercase() {
            b'k' => Some(1_000),
            b'm' => Some(1_000_000),
            b'g' => Some(1_000_000_000),
            b't' => Some(1_000_000_000_000),
            b'p' => Some(1_000_000_000_000_000),
            _ => None,
        };
        if let Some(m) = unit {
            mul = m;
            rest = tail;
        }
    }
    if let [b'i' | b'I', tail @ ..] = rest {
        rest = tail;
    }
    if let [b'b' | b'B', tail @ ..] = rest {
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(invalid());
    }
    let value: f64 = number
        .parse()
        .map_err(|_| GoError::Float(number.to_owned()))?;
    let size = value * mul as f64;
    // Go's float-to-int64 conversion on amd64 yields MinInt64 when out of range.
    if size >= i64::MAX as f64 {
        return Ok(i64::MIN);
    }
    Ok(size as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_as_go() {
        assert!(parse_bool("T").unwrap());
        assert!(!parse_bool("0").unwrap());
        assert_eq!(
            parse_bool("yes").unwrap_err().to_string(),
            "strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
    }

    #[test]
    fn durations_as_go() {
        assert_eq!(parse_duration("100ms").unwrap(), 100_000_000);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration("1h2m3s").unwrap(), 3_723_000_000_000);
        assert_eq!(parse_duration("-1s").unwrap(), -1_000_000_000);
        assert_eq!(parse_duration(".5us").unwrap(), 500);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(
            parse_duration("1").unwrap_err().to_string(),
            "time: missing unit in duration \"1\""
        );
        assert_eq!(
            parse_duration("x").unwrap_err().to_string(),
            "time: invalid duration \"x\""
        );
        assert_eq!(
            parse_duration("").unwrap_err().to_string(),
            "time: invalid duration \"\""
        );
        assert_eq!(
            parse_duration("3d").unwrap_err().to_string(),
            "time: unknown unit \"d\" in duration \"3d\""
        );
    }

    #[test]
    fn duration_strings_as_go() {
        assert_eq!(duration_string(99_000_000), "99ms");
        assert_eq!(duration_string(11_000_000_000), "11s");
        assert_eq!(duration_string(-1_000_000_000), "-1s");
        assert_eq!(duration_string(90_000_000_000), "1m30s");
        assert_eq!(duration_string(3_600_000_000_000), "1h0m0s");
        assert_eq!(duration_string(1_500), "1.5\u{b5}s");
        assert_eq!(duration_string(1_500_000_000), "1.5s");
    }

    #[test]
    fn uints_as_go() {
        assert_eq!(parse_uint("10", 32).unwrap(), 10);
        assert_eq!(
            parse_uint("-1", 32).unwrap_err().to_string(),
            "strconv.ParseUint: parsing \"-1\": invalid syntax"
        );
        assert_eq!(
            parse_uint("4294967296", 32).unwrap_err().to_string(),
            "strconv.ParseUint: parsing \"4294967296\": value out of range"
        );
        assert_eq!(parse_uint("65535", 16).unwrap(), 65535);
    }

    #[test]
    fn ram_sizes_as_go_units() {
        assert_eq!(ram_in_bytes("1048576").unwrap(), 1_048_576);
        assert_eq!(ram_in_bytes("1k").unwrap(), 1024);
        assert_eq!(ram_in_bytes("2MiB").unwrap(), 2 * 1024 * 1024);
        assert_eq!(ram_in_bytes("1.5 KB").unwrap(), 1536);
        assert_eq!(ram_in_bytes("10b").unwrap(), 10);
        assert_eq!(
            ram_in_bytes("abc").unwrap_err().to_string(),
            "invalid size: 'abc'"
        );
        assert_eq!(
            ram_in_bytes("1x").unwrap_err().to_string(),
            "invalid suffix: 'x'"
        );
        assert_eq!(
            ram_in_bytes("1kx").unwrap_err().to_string(),
            "invalid suffix: 'kx'"
        );
    }

    #[test]
    fn atoi_as_go() {
        assert_eq!(atoi("+5").unwrap(), 5);
        assert_eq!(atoi("-2").unwrap(), -2);
        assert_eq!(
            atoi("x").unwrap_err().to_string(),
            "strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            atoi("99999999999999999999").unwrap_err().to_string(),
            "strconv.Atoi: parsing \"99999999999999999999\": value out of range"
        );
    }

    #[test]
    fn human_sizes_follow_go_units() {
        let ok = |s: &str| from_human_size(s).unwrap();
        assert_eq!(ok("100"), 100);
        assert_eq!(ok("10m"), 10_000_000);
        assert_eq!(ok("10M"), 10_000_000);
        assert_eq!(ok("1.5m"), 1_500_000);
        assert_eq!(ok("1.1k"), 1100);
        assert_eq!(ok("2 kB"), 2000);
        assert_eq!(ok("3KiB"), 3000); // FromHumanSize is decimal even with "i"
        assert_eq!(ok("7b"), 7);
        assert_eq!(ok("1g"), 1_000_000_000);
        assert_eq!(ok("99999999999p"), i64::MIN, "Go's out-of-range conversion");
        for bad in ["", "k", "-1", "1x", "1  k", " 1", "1kbb", "1.", ".5"] {
            assert_eq!(
                from_human_size(bad),
                Err(GoError::Size(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(
            from_human_size("1.2.3k").unwrap_err().to_string(),
            "strconv.ParseFloat: parsing \"1.2.3\": invalid syntax"
        );
    }

    #[test]
    fn values_are_quoted_as_go_quotes_them() {
        assert_eq!(
            parse_bool("a\"b\\\t\u{1}\u{7f}é").unwrap_err().to_string(),
            "strconv.ParseBool: parsing \"a\\\"b\\\\\\t\\x01\\x7fé\": invalid syntax"
        );
    }
}
