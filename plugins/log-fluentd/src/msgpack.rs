//! The forward protocol's Message mode, `[tag, time, record, option]`, encoded as
//! fluent-logger-golang (msgp) does, and the server's `{"ack": chunk}` reply.

use burrow_plugin_sdk::log::{Entry, Source};
use thiserror::Error;

fn push_len(out: &mut Vec<u8>, len: usize, fix: u8, fix_max: usize, codes: [u8; 3]) {
    if len <= fix_max {
        out.push(fix | len as u8);
    } else if codes[0] != 0 && len <= 0xff {
        out.extend([codes[0], len as u8]);
    } else if len <= 0xffff {
        out.push(codes[1]);
        out.extend((len as u16).to_be_bytes());
    } else {
        out.push(codes[2]);
        out.extend((len as u32).to_be_bytes());
    }
}

pub fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    push_len(out, s.len(), 0xa0, 31, [0xd9, 0xda, 0xdb]);
    out.extend_from_slice(s);
}

pub fn push_map_header(out: &mut Vec<u8>, n: usize) {
    push_len(out, n, 0x80, 15, [0, 0xde, 0xdf]);
}

/// msgp's AppendInt64: the smallest *signed* encoding.
pub fn push_int(out: &mut Vec<u8>, v: i64) {
    if (0..=0x7f).contains(&v) {
        out.push(v as u8);
    } else if (-32..0).contains(&v) {
        out.push(v as i8 as u8);
    } else if i8::try_from(v).is_ok() {
        out.extend([0xd0, v as i8 as u8]);
    } else if let Ok(v) = i16::try_from(v) {
        out.push(0xd1);
        out.extend(v.to_be_bytes());
    } else if let Ok(v) = i32::try_from(v) {
        out.push(0xd2);
        out.extend(v.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend(v.to_be_bytes());
    }
}

/// What every record of one container carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoder {
    pub tag: String,
    /// The full 64-hex container id.
    pub container_id: String,
    /// Docker's name, with its leading '/'.
    pub container_name: String,
    /// The labels/env attributes (and "tag"), sorted by key.
    pub attrs: Vec<(String, String)>,
    pub sub_second: bool,
}

impl Encoder {
    /// The record's fields in order; later keys replace earlier ones as in moby, where
    /// the attributes are copied over the base fields and the partial fields over both.
    fn record<'a>(&'a self, e: &'a Entry) -> Vec<(&'a [u8], Vec<u8>)> {
        let source: &[u8] = match e.source {
            Source::Stdout => b"stdout",
            Source::Stderr => b"stderr",
        };
        let mut fields: Vec<(&[u8], Vec<u8>)> = vec![
            (b"container_id", self.container_id.as_bytes().to_vec()),
            (b"container_name", self.container_name.as_bytes().to_vec()),
            (b"source", source.to_vec()),
            (b"log", e.line.clone()),
        ];
        let mut set =
            |key: &'a [u8], value: Vec<u8>| match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => fields.push((key, value)),
            };
        for (k, v) in &self.attrs {
            set(k.as_bytes(), v.as_bytes().to_vec());
        }
        if let Some(p) = &e.partial {
            set(b"partial_message", b"true".to_vec());
            set(b"partial_id", p.id.as_bytes().to_vec());
            set(b"partial_ordinal", p.ordinal.to_string().into_bytes());
            set(
                b"partial_last",
                if p.last { &b"true"[..] } else { b"false" }.to_vec(),
            );
        }
        fields
    }

    /// One Message-mode event; `chunk` (already base64) asks the server for an ack.
    pub fn encode(&self, e: &Entry, chunk: Option<&str>, out: &mut Vec<u8>) {
        out.push(0x94);
        push_str(out, self.tag.as_bytes());
        let secs = (e.time_ns / 1_000_000_000) as i64;
        if self.sub_second {
            out.extend([0xd7, 0x00]);
            out.extend((secs as u32).to_be_bytes());
            out.extend(((e.time_ns % 1_000_000_000) as u32).to_be_bytes());
        } else {
            push_int(out, secs);
        }
        let fields = self.record(e);
        push_map_header(out, fields.len());
        for (k, v) in &fields {
            push_str(out, k);
            push_str(out, v);
        }
        match chunk {
            Some(c) => {
                push_map_header(out, 1);
                push_str(out, b"chunk");
                push_str(out, c.as_bytes());
            }
            None => push_map_header(out, 0),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AckError {
    #[error("the fluentd server answered with something other than an ack map (byte {byte:#04x})")]
    Unexpected { byte: u8 },
}

/// Reads `{"ack": chunk}` from the start of `buf`: `Ok(None)` while incomplete, else the
/// chunk (None when the map has no "ack") and the bytes consumed.
pub fn decode_ack(buf: &[u8]) -> Result<Option<(Option<String>, usize)>, AckError> {
    let mut pos = 0;
    let Some(n) = read_len(buf, &mut pos, Kind::Map)? else {
        return Ok(None);
    };
    let mut ack = None;
    for _ in 0..n {
        let Some(key) = read_bytes(buf, &mut pos)? else {
            return Ok(None);
        };
        let Some(value) = read_bytes(buf, &mut pos)? else {
            return Ok(None);
        };
        if key == b"ack" {
            ack = Some(String::from_utf8_lossy(value).into_owned());
        }
    }
    Ok(Some((ack, pos)))
}

#[derive(PartialEq)]
enum Kind {
    Map,
    Bytes,
}

fn read_len(buf: &[u8], pos: &mut usize, kind: Kind) -> Result<Option<usize>, AckError> {
    let Some(&b) = buf.get(*pos) else {
        return Ok(None);
    };
    let (width, fixed) = match (kind, b) {
        (Kind::Map, 0x80..=0x8f) => (0, usize::from(b & 0x0f)),
        (Kind::Map, 0xde) => (2, 0),
        (Kind::Map, 0xdf) => (4, 0),
        (Kind::Bytes, 0xa0..=0xbf) => (0, usize::from(b & 0x1f)),
        (Kind::Bytes, 0xd9 | 0xc4) => (1, 0),
        (Kind::Bytes, 0xda | 0xc5) => (2, 0),
        (Kind::Bytes, 0xdb | 0xc6) => (4, 0),
        _ => return Err(AckError::Unexpected { byte: b }),
    };
    let Some(raw) = buf.get(*pos + 1..*pos + 1 + width) else {
        return Ok(None);
    };
    *pos += 1 + width;
    Ok(Some(if width == 0 {
        fixed
    } else {
        raw.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b))
    }))
}

fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, AckError> {
    let start = *pos;
    let Some(n) = read_len(buf, pos, Kind::Bytes)? else {
        *pos = start;
        return Ok(None);
    };
    match buf.get(*pos..*pos + n) {
        Some(s) => {
            *pos += n;
            Ok(Some(s))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_plugin_sdk::log::Partial;

    const ID: &str = "1de4280a76da0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4a22";

    fn encoder(sub_second: bool) -> Encoder {
        Encoder {
            tag: "1de4280a76da".into(),
            container_id: ID.into(),
            container_name: "/fl1".into(),
            attrs: vec![("team".into(), "a".into())],
            sub_second,
        }
    }

    fn entry(line: &str, partial: Option<Partial>) -> Entry {
        Entry {
            time_ns: 1_795_333_798_906_742_166,
            source: Source::Stdout,
            line: line.as_bytes().to_vec(),
            partial,
            attrs: vec![],
        }
    }

    fn s(out: &mut Vec<u8>, text: &str) {
        push_str(out, text.as_bytes());
    }

    #[test]
    fn a_line_matches_the_capture() {
        let mut got = vec![];
        encoder(false).encode(&entry("hello", None), None, &mut got);
        // 94 ac "1de4280a76da" d2 6b029ea6, then the record and {}.
        let mut want = vec![0x94, 0xac];
        want.extend(b"1de4280a76da");
        want.extend([0xd2, 0x6b, 0x02, 0x9e, 0xa6, 0x85]);
        for (k, v) in [
            ("container_id", ID),
            ("container_name", "/fl1"),
            ("source", "stdout"),
            ("log", "hello"),
            ("team", "a"),
        ] {
            s(&mut want, k);
            s(&mut want, v);
        }
        want.push(0x80);
        assert_eq!(got, want);
        assert_eq!(&got[..2], [0x94, 0xac]);
        assert_eq!(got[33], 0xd9, "a 64-char id is str8, as msgp writes it");
    }

    #[test]
    fn sub_second_time_and_ack_option_match_the_capture() {
        let mut e = encoder(true);
        e.tag = "docker.fl2".into();
        let mut got = vec![];
        let mut entry = entry("x", None);
        entry.time_ns = 0x6b02_9ea6 * 1_000_000_000 + 0x3607_c992;
        e.encode(&entry, Some("pp4CawAAAAAQMYuWUh41/Q=="), &mut got);
        let mut head = vec![0x94, 0xaa];
        head.extend(b"docker.fl2");
        head.extend([0xd7, 0x00, 0x6b, 0x02, 0x9e, 0xa6, 0x36, 0x07, 0xc9, 0x92]);
        assert_eq!(&got[..head.len()], head);
        let mut tail = vec![0x81];
        s(&mut tail, "chunk");
        s(&mut tail, "pp4CawAAAAAQMYuWUh41/Q==");
        assert!(got.ends_with(&tail));
    }

    #[test]
    fn partial_chunks_add_dockers_fields() {
        let mut got = vec![];
        let p = Partial {
            id: "pid".into(),
            ordinal: 2,
            last: true,
        };
        encoder(false).encode(&entry("tail", Some(p)), None, &mut got);
        let mut record = vec![0x89];
        for (k, v) in [
            ("container_id", ID),
            ("container_name", "/fl1"),
            ("source", "stdout"),
            ("log", "tail"),
            ("team", "a"),
            ("partial_message", "true"),
            ("partial_id", "pid"),
            ("partial_ordinal", "2"),
            ("partial_last", "true"),
        ] {
            s(&mut record, k);
            s(&mut record, v);
        }
        record.push(0x80);
        assert!(got.ends_with(&record));
    }

    #[test]
    fn attributes_replace_base_fields_instead_of_duplicating_keys() {
        let mut e = encoder(false);
        e.attrs = vec![("source".into(), "label".into())];
        let entry = entry("x", None);
        let fields = e.record(&entry);
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[2], (&b"source"[..], b"label".to_vec()));
    }

    #[test]
    fn integers_use_msgps_signed_forms() {
        let enc = |v| {
            let mut o = vec![];
            push_int(&mut o, v);
            o
        };
        assert_eq!(enc(5), [5]);
        assert_eq!(enc(200), [0xd1, 0, 200]);
        assert_eq!(enc(1_795_333_798), [0xd2, 0x6b, 0x02, 0x9e, 0xa6]);
        assert_eq!(enc(1 << 32), [0xd3, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn long_strings_and_maps_switch_headers() {
        let mut o = vec![];
        push_str(&mut o, &[b'A'; 16384]);
        assert_eq!(&o[..3], [0xda, 0x40, 0x00]);
        let mut o = vec![];
        push_str(&mut o, &vec![b'A'; 70_000]);
        assert_eq!(&o[..5], [0xdb, 0, 1, 0x11, 0x70]);
        let mut o = vec![];
        push_map_header(&mut o, 16);
        assert_eq!(o, [0xde, 0, 16]);
    }

    #[test]
    fn ack_replies_decode_incrementally() {
        let mut reply = vec![0x81];
        s(&mut reply, "ack");
        s(&mut reply, "abc");
        for cut in 0..reply.len() {
            assert_eq!(decode_ack(&reply[..cut]).unwrap(), None, "cut {cut}");
        }
        assert_eq!(
            decode_ack(&reply).unwrap(),
            Some((Some("abc".to_string()), reply.len()))
        );
        // bin values (older msgpack packers) are accepted too.
        let bin = [0x81, 0xa3, b'a', b'c', b'k', 0xc4, 1, b'z'];
        assert_eq!(decode_ack(&bin).unwrap(), Some((Some("z".into()), 8)));
        assert!(decode_ack(&[0x92]).is_err());
    }
}
