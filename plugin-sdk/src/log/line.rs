//! Helpers for turning entries into text: which stream, where a line starts and ends (lines
//! over 16 KiB arrive in chunks), and the defaults Docker's drivers share.

use super::{Container, Entry, Source};

/// "stdout" or "stderr", as Docker names the streams.
pub fn stream_name(source: Source) -> &'static str {
    match source {
        Source::Stdout => "stdout",
        Source::Stderr => "stderr",
    }
}

/// True when `e` begins a line: a whole line, or the first chunk of a long one.
pub fn starts_line(e: &Entry) -> bool {
    e.partial.as_ref().is_none_or(|p| p.ordinal <= 1)
}

/// True when `e` ends a line: a whole line, or the last chunk of a long one. False for an
/// unterminated last line (the container's output ended without a newline).
pub fn ends_line(e: &Entry) -> bool {
    e.partial.as_ref().is_none_or(|p| p.last)
}

/// Appends the entry's bytes, and the newline the host removed when the entry ends a line:
/// the chunks of a long line, pushed in order, join into that line.
pub fn push_line(e: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.line);
    if ends_line(e) {
        out.push(b'\n');
    }
}

/// The first 12 characters of a container id, as `docker ps` shows it.
pub fn short_id(id: &str) -> &str {
    id.char_indices().nth(12).map_or(id, |(i, _)| &id[..i])
}

/// The `tag` option as the host rendered it, else the short id: the default of Docker's
/// syslog, fluentd, gelf and journald drivers (`{{.ID}}`).
pub fn tag_or_short_id(c: &Container) -> String {
    c.tag.clone().unwrap_or_else(|| short_id(&c.id).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{HostInfo, Partial};

    fn entry(line: &str, partial: Option<(u32, bool)>) -> Entry {
        Entry {
            time_ns: 0,
            source: Source::Stdout,
            line: line.into(),
            partial: partial.map(|(ordinal, last)| Partial {
                id: "p".into(),
                ordinal,
                last,
            }),
            attrs: vec![],
        }
    }

    #[test]
    fn chunks_join_into_one_line() {
        let mut out = Vec::new();
        for e in [
            entry("whole", None),
            entry("AAA", Some((1, false))),
            entry("BBB", Some((2, true))),
            entry("unterminated", Some((1, false))),
        ] {
            push_line(&e, &mut out);
        }
        assert_eq!(out, b"whole\nAAABBB\nunterminated");
        assert!(starts_line(&entry("x", None)) && ends_line(&entry("x", None)));
        assert!(starts_line(&entry("x", Some((1, false)))));
        assert!(!starts_line(&entry("x", Some((2, true)))));
        assert!(!ends_line(&entry("x", Some((2, false)))));
        assert_eq!(stream_name(Source::Stderr), "stderr");
    }

    #[test]
    fn the_default_tag_is_the_short_id() {
        let mut c = Container {
            id: "e41187040f57d343ff63cae3aa0b1c2d".into(),
            name: "c1".into(),
            image_id: String::new(),
            image_name: String::new(),
            command: String::new(),
            hostname: String::new(),
            created_ns: 0,
            tag: None,
            attrs: vec![],
            host: HostInfo {
                hostname: "vm".into(),
                pid: 1,
                utc_offset_secs: 0,
            },
        };
        assert_eq!(tag_or_short_id(&c), "e41187040f57");
        c.tag = Some("local/bb:1/c1".into());
        assert_eq!(tag_or_short_id(&c), "local/bb:1/c1");
        assert_eq!(short_id("abc"), "abc");
    }
}
