//! Docker's json-file line format, byte for byte.
//!
//! moby writes each line with a hand-rolled marshaller (`jsonlog/jsonlogbytes.go`) whose
//! escaping differs from `encoding/json` (a tab in `log` becomes `\u0009`), while the `attrs`
//! object comes from `json.Marshal` of a `map[string]string` (sorted keys, a tab becomes `\t`).
//! serde_json matches neither, so both escapers are written out here.

use burrow_plugin_sdk::log::{Entry, Kv, Source};
use burrow_plugin_sdk::time::Rfc3339Nano;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Turns entries into json-file lines; keeps the pre-encoded `attrs` and the formatted date
/// of the last second seen, so a line costs no allocation.
pub struct Encoder {
    attrs: Vec<u8>,
    time: Rfc3339Nano,
}

impl Encoder {
    /// `attrs` as the container record carries them (the host sorts them; sorted again here
    /// because Go's map marshalling orders keys bytewise whatever the input).
    pub fn new(attrs: &[Kv]) -> Self {
        Self {
            attrs: encode_attrs(attrs),
            time: Rfc3339Nano::default(),
        }
    }

    /// Appends one line, `\n` included, to `out`.
    pub fn encode(&mut self, e: &Entry, out: &mut Vec<u8>) {
        let newline = e.partial.as_ref().is_none_or(|p| p.last);
        out.push(b'{');
        // `log` is `omitempty` in moby: an empty unterminated chunk has no "log" key.
        let has_log = newline || !e.line.is_empty();
        if has_log {
            out.extend_from_slice(b"\"log\":\"");
            escape_log(&e.line, out);
            if newline {
                out.extend_from_slice(b"\\n");
            }
            out.extend_from_slice(b"\",");
        }
        out.extend_from_slice(match e.source {
            Source::Stdout => b"\"stream\":\"stdout\"",
            Source::Stderr => b"\"stream\":\"stderr\"",
        });
        if !self.attrs.is_empty() {
            out.extend_from_slice(b",\"attrs\":");
            out.extend_from_slice(&self.attrs);
        }
        out.extend_from_slice(b",\"time\":\"");
        self.time.write(e.time_ns, out);
        out.extend_from_slice(b"\"}\n");
    }
}

/// `{"k":"v",...}` as Go's `json.Marshal(map[string]string)` writes it; empty when there are
/// no attributes (moby then leaves the key out).
pub fn encode_attrs(attrs: &[Kv]) -> Vec<u8> {
    if attrs.is_empty() {
        return Vec::new();
    }
    let mut sorted: Vec<&Kv> = attrs.iter().collect();
    sorted.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    // A Go map holds a key once; the later value wins.
    sorted.dedup_by(|later, earlier| {
        if later.key == earlier.key {
            std::mem::swap(later, earlier);
            true
        } else {
            false
        }
    });
    let mut out = Vec::with_capacity(64);
    out.push(b'{');
    for (i, kv) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        escape_go_json(&kv.key, &mut out);
        out.push(b':');
        escape_go_json(&kv.value, &mut out);
    }
    out.push(b'}');
    out
}

/// The escaping of moby's `ffjsonWriteJSONBytesAsString`, without the quotes: `"` and `\`
/// backslashed, `\n` and `\r` named, other bytes below 0x20 and `<>&` as `\u00XX`, each byte of
/// invalid UTF-8 as `\ufffd` (Go's `utf8.DecodeRune` reports width 1), U+2028/U+2029 escaped.
pub fn escape_log(s: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            if !NEEDS_ESCAPE[b as usize] {
                i += 1;
                continue;
            }
            out.extend_from_slice(&s[start..i]);
            match b {
                b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => push_u00(b, out),
            }
            i += 1;
            start = i;
            continue;
        }
        match utf8_width(&s[i..]) {
            0 => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(b"\\ufffd");
                i += 1;
                start = i;
            }
            3 if s[i] == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9) => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(if s[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
            }
            w => i += w,
        }
    }
    out.extend_from_slice(&s[start..]);
}

/// Go 1.19's `encoding/json` string encoding (the Go that built dockerd 20.10.24, our
/// oracle), quotes included: like [`escape_log`] except that `\t` is named. Go 1.22 and later
/// also name `\b` and `\f`; 1.19 writes `\u0008` and `\u000c`.
pub fn escape_go_json(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\t' {
            escape_log(&bytes[start..i], out);
            out.extend_from_slice(b"\\t");
            start = i + 1;
        }
    }
    // A `str` is valid UTF-8, so the rest is exactly the log escaping.
    escape_log(&bytes[start..], out);
    out.push(b'"');
}

fn push_u00(b: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\\u00");
    out.push(HEX[(b >> 4) as usize]);
    out.push(HEX[(b & 0xF) as usize]);
}

const NEEDS_ESCAPE: [bool; 128] = {
    let mut t = [false; 128];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t
};

/// Width of the valid UTF-8 sequence starting at `s[0]` (a non-ASCII byte), or 0 when Go's
/// `utf8.DecodeRune` would return `(RuneError, 1)`: overlong forms, surrogates, values above
/// U+10FFFF and truncated sequences are invalid.
fn utf8_width(s: &[u8]) -> usize {
    let b0 = s[0];
    let cont = |i: usize, lo: u8, hi: u8| s.get(i).is_some_and(|&b| (lo..=hi).contains(&b));
    match b0 {
        0xC2..=0xDF if cont(1, 0x80, 0xBF) => 2,
        0xE0 if cont(1, 0xA0, 0xBF) && cont(2, 0x80, 0xBF) => 3,
        0xE1..=0xEC | 0xEE..=0xEF if cont(1, 0x80, 0xBF) && cont(2, 0x80, 0xBF) => 3,
        0xED if cont(1, 0x80, 0x9F) && cont(2, 0x80, 0xBF) => 3,
        0xF0 if cont(1, 0x90, 0xBF) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) => 4,
        0xF1..=0xF3 if cont(1, 0x80, 0xBF) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) => 4,
        0xF4 if cont(1, 0x80, 0x8F) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) => 4,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_plugin_sdk::log::Partial;

    /// 2026-11-22T07:48:58.969041395Z, the first capture's time.
    const T0: u64 = 1_795_333_738_969_041_395;

    fn capture_attrs() -> Vec<Kv> {
        [
            ("E1", "x"),
            ("a", "1"),
            ("b", "2"),
            ("tag", "jf1/local/bb:1/d343ff63cae3"),
        ]
        .into_iter()
        .map(|(k, v)| Kv {
            key: k.into(),
            value: v.into(),
        })
        .collect()
    }

    fn entry(line: &[u8], source: Source, ns: u64, partial: Option<Partial>) -> Entry {
        Entry {
            time_ns: ns,
            source,
            line: line.to_vec(),
            partial,
            attrs: vec![],
        }
    }

    fn enc(e: &Entry, attrs: &[Kv]) -> String {
        let mut out = Vec::new();
        Encoder::new(attrs).encode(e, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn esc(s: &[u8]) -> String {
        let mut out = Vec::new();
        escape_log(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn first_capture_line_is_byte_exact() {
        let e = entry(b"err1", Source::Stderr, T0, None);
        assert_eq!(
            enc(&e, &capture_attrs()),
            "{\"log\":\"err1\\n\",\"stream\":\"stderr\",\"attrs\":{\"E1\":\"x\",\"a\":\"1\",\"b\":\"2\",\"tag\":\"jf1/local/bb:1/d343ff63cae3\"},\"time\":\"2026-11-22T07:48:58.969041395Z\"}\n"
        );
    }

    #[test]
    fn escaping_matches_the_captures() {
        assert_eq!(
            esc(b"line1 <a>&\"q\" tab\tend"),
            r#"line1 \u003ca\u003e\u0026\"q\" tab\u0009end"#
        );
        assert_eq!(
            esc(b"ctl\x01 bad\xff ls\xe2\x80\xa8 x"),
            r"ctl\u0001 bad\ufffd ls\u2028 x"
        );
    }

    #[test]
    fn escaping_table() {
        assert_eq!(esc(b"\r\n\\"), r"\r\n\\");
        assert_eq!(
            esc(b"\x00\x08\x0c\x1f\x7f"),
            "\\u0000\\u0008\\u000c\\u001f\x7f"
        );
        assert_eq!(esc("\u{2029}é€😀".as_bytes()), "\\u2029é€😀");
        // Each byte of an invalid sequence is replaced on its own, as utf8.DecodeRune does.
        assert_eq!(esc(b"\xe2\x82"), r"\ufffd\ufffd");
        assert_eq!(esc(b"\xc0\xaf"), r"\ufffd\ufffd"); // overlong '/'
        assert_eq!(esc(b"\xed\xa0\x80"), r"\ufffd\ufffd\ufffd"); // surrogate
        assert_eq!(esc(b"\xf4\x90\x80\x80"), r"\ufffd\ufffd\ufffd\ufffd"); // > U+10FFFF
        // A real U+FFFD passes through unescaped.
        assert_eq!(esc("\u{fffd}".as_bytes()), "\u{fffd}");
        assert_eq!(esc(b"/plain'"), "/plain'");
    }

    #[test]
    fn attrs_use_encoding_json_rules() {
        let kv = |k: &str, v: &str| Kv {
            key: k.into(),
            value: v.into(),
        };
        let a = encode_attrs(&[kv("z", "<\"a\tb<"), kv("B", "1"), kv("a", "\u{8}")]);
        assert_eq!(
            String::from_utf8(a).unwrap(),
            r#"{"B":"1","a":"\u0008","z":"\u003c\"a\tb\u003c"}"#
        );
        assert!(encode_attrs(&[]).is_empty());
    }

    #[test]
    fn partial_chunks_and_missing_attrs() {
        let p = |last| {
            Some(Partial {
                id: "x".into(),
                ordinal: 1,
                last,
            })
        };
        let t = 1_795_333_739_006_624_166;
        let e = entry(b"no-newline-at-end", Source::Stdout, t, p(false));
        assert_eq!(
            enc(&e, &[]),
            "{\"log\":\"no-newline-at-end\",\"stream\":\"stdout\",\"time\":\"2026-11-22T07:48:59.006624166Z\"}\n"
        );
        let e = entry(b"AAA", Source::Stdout, t, p(true));
        assert!(enc(&e, &[]).starts_with("{\"log\":\"AAA\\n\","));
        // moby's `omitempty`: an empty non-final chunk has no "log".
        let e = entry(b"", Source::Stdout, t, p(false));
        assert_eq!(
            enc(&e, &[]),
            "{\"stream\":\"stdout\",\"time\":\"2026-11-22T07:48:59.006624166Z\"}\n"
        );
        let e = entry(b"", Source::Stdout, t, None);
        assert!(enc(&e, &[]).starts_with("{\"log\":\"\\n\",\"stream\""));
    }
}
