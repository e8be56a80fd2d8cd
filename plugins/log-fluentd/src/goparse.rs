//! The Go parsers behind Docker's fluentd options (`strconv.ParseBool`,
//! `strconv.ParseUint`, `time.ParseDuration`, go-units' `RAMInBytes`), with their
//! error texts, so that a bad option reads exactly as Docker's.

use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum GoError {
    #[error("strconv.ParseBool: parsing \"{0}\": invalid syntax")]
    Bool(String),
    #[error("strconv.ParseUint: parsing \"{0}\": invalid syntax")]
    UintSyntax(String),
    #[error("strconv.ParseUint: parsing \"{0}\": value out of range")]
    UintRange(String),
    #[error("time: invalid duration \"{0}\"")]
    Duration(String),
    #[error("time: missing unit in duration \"{0}\"")]
    DurationUnitMissing(String),
    #[error("time: unknown unit \"{unit}\" in duration \"{value}\"")]
    DurationUnit { unit: String, value: String },
    #[error("invalid size: '{0}'")]
    Size(String),
    #[error("invalid suffix: '{0}'")]
    SizeSuffix(String),
    #[error("strconv.ParseFloat: parsing \"{0}\": invalid syntax")]
    Float(String),
}

pub fn parse_bool(s: &str) -> Result<bool, GoError> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(GoError::Bool(s.to_string())),
    }
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
}
