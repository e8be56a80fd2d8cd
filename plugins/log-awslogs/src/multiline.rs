//! `awslogs-datetime-format` / `awslogs-multiline-pattern`: lines are gathered into one
//! event until a line matches the pattern (moby's collectBatch).

use crate::batcher::MAX_EVENT_BYTES;

/// A compiled multiline pattern. Go's RE2 classes (`\d`, `\w`, `\s`) are ASCII-only, and so
/// are these: the pattern is compiled without Unicode mode, which also keeps the regex
/// crate's Unicode tables out of the plugin (a third of its size).
pub type Pattern = regex::bytes::Regex;

pub fn compile(pattern: &str) -> Result<Pattern, regex::Error> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .build()
}

/// strftime sequences to the regular expressions moby uses for them.
const STRFTIME: &[(char, &str)] = &[
    ('a', "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"),
    (
        'A',
        "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)",
    ),
    ('w', "[0-6]"),
    ('d', "(?:0[1-9]|[1,2][0-9]|3[0,1])"),
    ('b', "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"),
    (
        'B',
        "(?:January|February|March|April|May|June|July|August|September|October|November|December)",
    ),
    ('m', "(?:0[1-9]|1[0-2])"),
    ('Y', r"\d{4}"),
    ('y', r"\d{2}"),
    ('H', "(?:[0,1][0-9]|2[0-3])"),
    ('I', "(?:0[0-9]|1[0-2])"),
    ('p', "[A,P]M"),
    ('M', "[0-5][0-9]"),
    ('S', "[0-5][0-9]"),
    ('f', r"\d{6}"),
    ('z', r"[+-]\d{4}"),
    ('Z', "[A-Z]{1,4}T"),
    ('j', "(?:0[0-9][1-9]|[1,2][0-9][0-9]|3[0-5][0-9]|36[0-6])"),
    ('L', r"\.\d{3}"),
];

/// Replaces every `%X` of `format` as moby does: a known sequence by its expression, an
/// unknown one (including `%%`) by nothing; the rest of the text stays a regular expression.
pub fn strftime_to_regex(format: &str) -> String {
    let mut out = String::with_capacity(format.len() * 4);
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        // Go's "%." does not match a newline, so "%\n" stays as it is.
        match (c, chars.peek()) {
            ('%', Some(&next)) if next != '\n' => {
                chars.next();
                if let Some((_, re)) = STRFTIME.iter().find(|(k, _)| *k == next) {
                    out.push_str(re);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// One multiline event being gathered.
#[derive(Debug)]
pub struct Multiline {
    pattern: Pattern,
    buf: String,
    /// The timestamp (ms) of the buffer's first line.
    started_ms: i64,
}

impl Multiline {
    pub fn new(pattern: Pattern) -> Multiline {
        Multiline {
            pattern,
            buf: String::new(),
            started_ms: 0,
        }
    }

    /// Adds one line (already in its effective UTF-8 form) read at `ts_ms`; returns the
    /// event it completes, if any.
    pub fn push(&mut self, line: &str, ts_ms: i64) -> Option<(String, i64)> {
        let mut done = None;
        if self.pattern.is_match(line.as_bytes()) || self.buf.len() + line.len() > MAX_EVENT_BYTES {
            done = self.take();
        }
        if self.buf.is_empty() {
            self.started_ms = ts_ms;
        }
        self.buf.push_str(line);
        // moby appends the newline only when the line alone fits in an event.
        if line.len() < MAX_EVENT_BYTES {
            self.buf.push('\n');
        }
        done
    }

    /// The gathered event once it is `interval_ms` old at `now_ms` (or from the future).
    pub fn expire(&mut self, now_ms: i64, interval_ms: i64) -> Option<(String, i64)> {
        let age = now_ms - self.started_ms;
        if !self.buf.is_empty() && (age >= interval_ms || age < 0) {
            return self.take();
        }
        None
    }

    pub fn take(&mut self) -> Option<(String, i64)> {
        if self.buf.is_empty() {
            return None;
        }
        Some((std::mem::take(&mut self.buf), self.started_ms))
    }

    pub fn started_ms(&self) -> Option<i64> {
        (!self.buf.is_empty()).then_some(self.started_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ml(format: &str) -> Multiline {
        Multiline::new(compile(&strftime_to_regex(format)).unwrap())
    }

    #[test]
    fn strftime_table_and_unknown_sequences() {
        assert_eq!(
            strftime_to_regex("%Y-%m-%d"),
            r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[1,2][0-9]|3[0,1])"
        );
        assert_eq!(strftime_to_regex("[%Q%%x]"), "[x]");
        assert_eq!(
            strftime_to_regex("%H:%M:%S%L"),
            r"(?:[0,1][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.\d{3}"
        );
        assert_eq!(strftime_to_regex("a%"), "a%");
        for (k, _) in STRFTIME {
            let re = strftime_to_regex(&format!("%{k}"));
            assert!(compile(&re).is_ok(), "%{k} -> {re}");
        }
    }

    #[test]
    fn patterns_are_matched_as_go_matches_them() {
        let re = compile(r"^\[\d+\] café").unwrap();
        assert!(re.is_match("[12] café au lait".as_bytes()));
        assert!(!re.is_match("[x] café".as_bytes()));
        assert!(compile(r"^\w+\s").unwrap().is_match(b"word rest"));
        assert!(compile("(?i)^error").unwrap().is_match(b"ERROR: x"));
    }

    #[test]
    fn gathers_lines_until_the_next_match() {
        // Verified against dockerd 20.10: two events, each line with its newline.
        let mut m = ml("%Y-%m-%d");
        assert_eq!(m.push("2024-01-01 start", 10), None);
        assert_eq!(m.push("  continuation", 11), None);
        assert_eq!(
            m.push("2024-01-02 next", 12),
            Some(("2024-01-01 start\n  continuation\n".to_string(), 10))
        );
        assert_eq!(m.take(), Some(("2024-01-02 next\n".to_string(), 12)));
        assert_eq!(m.take(), None);
    }

    #[test]
    fn lines_before_the_first_match_form_their_own_event() {
        let mut m = ml("^START");
        assert_eq!(m.push("junk", 1), None);
        assert_eq!(m.push("START a", 2), Some(("junk\n".into(), 1)));
        assert_eq!(m.started_ms(), Some(2));
    }

    #[test]
    fn expires_after_the_interval_or_when_from_the_future() {
        let mut m = ml("^S");
        m.push("S one", 1_000);
        assert_eq!(m.expire(5_999, 5_000), None);
        assert_eq!(m.expire(6_000, 5_000), Some(("S one\n".into(), 1_000)));
        m.push("cont", 10_000);
        assert_eq!(m.expire(9_000, 5_000), Some(("cont\n".into(), 10_000)));
        assert_eq!(m.expire(99_000, 5_000), None);
    }

    #[test]
    fn an_event_never_passes_the_size_limit() {
        let mut m = ml("^S");
        let big = "x".repeat(MAX_EVENT_BYTES - 10);
        assert_eq!(m.push(&big, 1), None);
        let (ev, ts) = m.push("0123456789", 2).unwrap();
        assert_eq!((ev.len(), ts), (MAX_EVENT_BYTES - 9, 1));
        // A line as large as an event gets no newline.
        let full = "y".repeat(MAX_EVENT_BYTES);
        let (ev, _) = m.push(&full, 3).unwrap();
        assert_eq!(ev, "0123456789\n");
        assert_eq!(m.take().unwrap().0.len(), MAX_EVENT_BYTES);
    }
}
