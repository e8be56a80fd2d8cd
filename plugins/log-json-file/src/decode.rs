//! Parses json-file lines back: `{"log":…,"stream":…,"attrs":{…},"time":…}` in any key
//! order, with any JSON whitespace and unknown keys skipped (files written by dockerd read
//! the same as ours).

use burrow_plugin_sdk::log::{Kv, Source};
use burrow_plugin_sdk::time::days_from_civil;

#[derive(Debug, Clone)]
pub struct Line {
    /// The `log` value, trailing `\n` included when the line was complete.
    pub log: Vec<u8>,
    pub source: Source,
    pub time_ns: u64,
    pub attrs: Vec<Kv>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("malformed json-file line: unexpected input at byte {at}")]
    Syntax { at: usize },
    #[error("malformed json-file line: bad time {value:?}")]
    Time { value: String },
    #[error("malformed json-file line: no \"time\"")]
    NoTime,
}

pub fn decode_line(s: &[u8]) -> Result<Line, DecodeError> {
    let mut p = Parser { s, i: 0 };
    let mut line = Line {
        log: Vec::new(),
        source: Source::Stdout,
        time_ns: 0,
        attrs: Vec::new(),
    };
    let mut have_time = false;
    let mut key = Vec::new();
    let mut val = Vec::new();
    p.ws();
    p.expect(b'{')?;
    p.ws();
    if p.peek() == Some(b'}') {
        return Err(DecodeError::NoTime);
    }
    loop {
        p.ws();
        key.clear();
        p.string(&mut key)?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_slice() {
            b"log" => p.string(&mut line.log)?,
            b"stream" => {
                val.clear();
                p.string(&mut val)?;
                line.source = if val == b"stderr" {
                    Source::Stderr
                } else {
                    Source::Stdout
                };
            }
            b"time" => {
                val.clear();
                p.string(&mut val)?;
                line.time_ns = parse_rfc3339(&val).ok_or_else(|| DecodeError::Time {
                    value: String::from_utf8_lossy(&val).into_owned(),
                })?;
                have_time = true;
            }
            b"attrs" if p.peek() == Some(b'{') => p.attrs(&mut line.attrs)?,
            _ => p.skip_value()?,
        }
        p.ws();
        match p.next() {
            Some(b',') => continue,
            Some(b'}') => break,
            _ => return Err(p.err()),
        }
    }
    if !have_time {
        return Err(DecodeError::NoTime);
    }
    Ok(line)
}

/// RFC 3339 with an optional fraction of up to 9 digits and `Z` or `±hh:mm`, as Go's
/// `time.Time.UnmarshalJSON` reads it; Unix nanoseconds, clamped at 0.
pub fn parse_rfc3339(s: &[u8]) -> Option<u64> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = s.get(r)?;
        d.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let sep = |i: usize, c: u8| s.get(i) == Some(&c);
    if !(sep(4, b'-')
        && sep(7, b'-')
        && (sep(10, b'T') || sep(10, b't'))
        && sep(13, b':')
        && sep(16, b':'))
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0i64;
    if sep(i, b'.') {
        i += 1;
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() {
            return None;
        }
        for k in 0..9 {
            frac = frac * 10 + digits.get(k).map_or(0, |&c| i64::from(c - b'0'));
        }
    }
    let offset = match s.get(i) {
        Some(b'Z' | b'z') if s.len() == i + 1 => 0,
        Some(&c @ (b'+' | b'-')) if s.len() == i + 6 && sep(i + 3, b':') => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if c == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let ns = i128::from(secs) * 1_000_000_000 + i128::from(frac);
    Some(ns.clamp(0, i128::from(u64::MAX)) as u64)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn err(&self) -> DecodeError {
        DecodeError::Syntax { at: self.i }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), DecodeError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err())
        }
    }

    /// A JSON string, unescaped onto `out`. A lone surrogate becomes U+FFFD, as in Go.
    fn string(&mut self, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        self.expect(b'"')?;
        loop {
            let rest = &self.s[self.i..];
            let run = rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\')
                .ok_or(DecodeError::Syntax { at: self.s.len() })?;
            out.extend_from_slice(&rest[..run]);
            self.i += run;
            if self.next() == Some(b'"') {
                return Ok(());
            }
            let c = self.next().ok_or_else(|| self.err())?;
            let simple = match c {
                b'"' => b'"',
                b'\\' => b'\\',
                b'/' => b'/',
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' => {
                    let cp = self.unicode_escape()?;
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(cp.encode_utf8(&mut tmp).as_bytes());
                    continue;
                }
                _ => return Err(self.err()),
            };
            out.push(simple);
        }
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let d = self.s.get(self.i..self.i + 4).ok_or_else(|| self.err())?;
        let s = std::str::from_utf8(d).map_err(|_| self.err())?;
        let v = u32::from_str_radix(s, 16).map_err(|_| self.err())?;
        self.i += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self) -> Result<char, DecodeError> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) && self.s[self.i..].starts_with(b"\\u") {
            let save = self.i;
            self.i += 2;
            let lo = self.hex4()?;
            if (0xDC00..0xE000).contains(&lo) {
                let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return Ok(char::from_u32(cp).unwrap_or('\u{fffd}'));
            }
            self.i = save;
        }
        Ok(char::from_u32(hi).unwrap_or('\u{fffd}'))
    }

    fn attrs(&mut self, out: &mut Vec<Kv>) -> Result<(), DecodeError> {
        self.expect(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        let mut k = Vec::new();
        let mut v = Vec::new();
        loop {
            self.ws();
            k.clear();
            v.clear();
            self.string(&mut k)?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            if self.peek() == Some(b'"') {
                self.string(&mut v)?;
                out.push(Kv {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    value: String::from_utf8_lossy(&v).into_owned(),
                });
            } else {
                self.skip_value()?;
            }
            self.ws();
            match self.next() {
                Some(b',') => continue,
                Some(b'}') => return Ok(()),
                _ => return Err(self.err()),
            }
        }
    }

    fn skip_value(&mut self) -> Result<(), DecodeError> {
        match self.peek() {
            Some(b'"') => {
                let mut sink = Vec::new();
                self.string(&mut sink)
            }
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        let mut sink = Vec::new();
                        self.string(&mut sink)?;
                        self.ws();
                        self.expect(b':')?;
                        self.ws();
                    }
                    self.skip_value()?;
                    self.ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(c) if c == close => return Ok(()),
                        _ => return Err(self.err()),
                    }
                }
            }
            Some(_) => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
                {
                    self.i += 1;
                }
                if self.i == start {
                    Err(self.err())
                } else {
                    Ok(())
                }
            }
            None => Err(self.err()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Encoder;
    use burrow_plugin_sdk::log::Entry;

    #[test]
    fn reads_a_capture_line() {
        let l = decode_line(br#"{"log":"line1 \u003ca\u003e\u0026\"q\" tab\u0009end\n","stream":"stdout","attrs":{"E1":"x","tag":"jf1/local/bb:1/d343ff63cae3"},"time":"2026-11-22T07:48:58.969071282Z"}"#).unwrap();
        assert_eq!(l.log, b"line1 <a>&\"q\" tab\tend\n");
        assert_eq!(l.source, Source::Stdout);
        assert_eq!(l.time_ns, 1_795_333_738_969_071_282);
        assert_eq!(l.attrs.len(), 2);
        assert_eq!(l.attrs[1].value, "jf1/local/bb:1/d343ff63cae3");
    }

    #[test]
    fn round_trips_what_the_encoder_writes() {
        let line = b"ctl\x01 bad\xff ls\xe2\x80\xa8 x \\ \"\r\n\t\xf0\x9f\x98\x80".to_vec();
        let e = Entry {
            time_ns: 1_795_333_739_006_624_166,
            source: Source::Stderr,
            line,
            partial: None,
            attrs: vec![],
        };
        let mut out = Vec::new();
        Encoder::new(&[Kv {
            key: "k\t".into(),
            value: "<v>".into(),
        }])
        .encode(&e, &mut out);
        let l = decode_line(&out[..out.len() - 1]).unwrap();
        assert_eq!(
            l.log,
            "ctl\x01 bad\u{fffd} ls\u{2028} x \\ \"\r\n\t😀\n".as_bytes()
        );
        assert_eq!(l.source, Source::Stderr);
        assert_eq!(l.time_ns, e.time_ns);
        let attrs: Vec<(&str, &str)> = l.attrs.iter().map(|kv| (&*kv.key, &*kv.value)).collect();
        assert_eq!(attrs, [("k\t", "<v>")]);
    }

    #[test]
    fn tolerates_other_writers_and_rejects_garbage() {
        let l = decode_line(br#" { "time" : "2026-11-22T08:48:58.5+01:00", "x":[1,{"y":null}], "log":"a\ud83d\ude00\ud800" } "#)
            .unwrap();
        assert_eq!(l.time_ns, 1_795_333_738_500_000_000);
        assert_eq!(l.log, "a😀\u{fffd}".as_bytes());
        assert!(decode_line(br#"{"log":"x"}"#).is_err());
        assert!(decode_line(br#"{"log":"x","time":"yesterday"}"#).is_err());
        assert!(decode_line(br#"{"log":"x","time":"2026-11-22T07:48:58Z""#).is_err());
        assert!(decode_line(b"").is_err());
    }

    #[test]
    fn rfc3339_forms() {
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339(b"1970-01-01T00:00:01.000000001Z"),
            Some(1_000_000_001)
        );
        assert_eq!(parse_rfc3339(b"1969-12-31T23:59:59Z"), Some(0));
        assert_eq!(parse_rfc3339(b"0001-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339(b"1970-01-01T01:00:00-01:00"),
            Some(7_200_000_000_000)
        );
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00.Z"), None);
        assert_eq!(parse_rfc3339(b"1970-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339(b"1970-01-01 00:00:00Z"), None);
    }
}
