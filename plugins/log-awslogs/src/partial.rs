//! Reassembles the host's 16 KiB chunks of a long line.
//!
//! dockerd reads awslogs containers' output with a buffer of `maximumBytesPerEvent`
//! (262,118 bytes, the driver's `BufSize`), so a line is cut into events only past that
//! size. burrow's host cuts every line at 16 KiB for every driver; joining the chunks back,
//! up to the same size, gives the events dockerd gives (a 300,000-byte line: 262,118 +
//! 37,882 bytes, not 19 events of 16 KiB).

use crate::batcher::{MAX_EVENT_BYTES, effective};

/// Which output stream a line came from; chunks of stdout and stderr interleave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Stdout = 0,
    Stderr = 1,
}

/// A chunk's place in its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub id: &'a str,
    pub last: bool,
}

#[derive(Debug)]
struct Pending {
    id: String,
    bytes: Vec<u8>,
    ts_ms: i64,
}

/// A whole line, or a part of one as large as an event, in its effective UTF-8 form.
pub type Line = (String, i64);

#[derive(Debug, Default)]
pub struct Joiner {
    pending: [Option<Pending>; 2],
}

impl Joiner {
    /// Adds one entry; whole lines (and event-sized parts of long ones) go to `out`.
    pub fn push(
        &mut self,
        source: Source,
        line: &[u8],
        chunk: Option<Chunk<'_>>,
        ts_ms: i64,
        out: &mut Vec<Line>,
    ) {
        let slot = &mut self.pending[source as usize];
        let Some(chunk) = chunk else {
            // A complete line after an unfinished one: the unfinished one ended there.
            if let Some(p) = slot.take() {
                out.push((effective(&p.bytes), p.ts_ms));
            }
            out.push((effective(line), ts_ms));
            return;
        };
        if slot.as_ref().is_some_and(|p| p.id != chunk.id) {
            let p = slot.take().expect("checked above");
            out.push((effective(&p.bytes), p.ts_ms));
        }
        let p = slot.get_or_insert_with(|| Pending {
            id: chunk.id.to_string(),
            bytes: Vec::new(),
            ts_ms,
        });
        p.bytes.extend_from_slice(line);
        // Keep no more than one event's worth: past it the cut point is final (a character
        // at most 4 bytes long cannot straddle it any more).
        while p.bytes.len() > MAX_EVENT_BYTES + 3 {
            let at = raw_split(&p.bytes, MAX_EVENT_BYTES);
            out.push((effective(&p.bytes[..at]), p.ts_ms));
            p.bytes.drain(..at);
        }
        if chunk.last {
            let p = slot.take().expect("inserted above");
            out.push((effective(&p.bytes), p.ts_ms));
        }
    }

    /// Unfinished lines whose first chunk is `interval_ms` old (an unterminated last line
    /// stays unfinished for good).
    pub fn expire(&mut self, now_ms: i64, interval_ms: i64, out: &mut Vec<Line>) {
        for slot in &mut self.pending {
            if slot
                .as_ref()
                .is_some_and(|p| now_ms - p.ts_ms >= interval_ms || now_ms < p.ts_ms)
            {
                let p = slot.take().expect("checked above");
                out.push((effective(&p.bytes), p.ts_ms));
            }
        }
    }

    pub fn take_all(&mut self, out: &mut Vec<Line>) {
        for slot in &mut self.pending {
            if let Some(p) = slot.take() {
                out.push((effective(&p.bytes), p.ts_ms));
            }
        }
    }

    pub fn oldest_ms(&self) -> Option<i64> {
        self.pending.iter().flatten().map(|p| p.ts_ms).min()
    }
}

/// The raw offset where `bytes` reaches `max` effective bytes without splitting a
/// character (moby's findValidSplit).
fn raw_split(bytes: &[u8], max: usize) -> usize {
    let (mut raw, mut eff) = (0, 0);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if eff + c.len_utf8() > max {
                return raw;
            }
            eff += c.len_utf8();
            raw += c.len_utf8();
        }
        for _ in chunk.invalid() {
            if eff + 3 > max {
                return raw;
            }
            eff += 3;
            raw += 1;
        }
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(j: &mut Joiner, line: &[u8], chunk_size: usize, id: &str, ts: i64) -> Vec<Line> {
        let mut out = Vec::new();
        let chunks: Vec<&[u8]> = line.chunks(chunk_size).collect();
        for (i, c) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            j.push(Source::Stdout, c, Some(Chunk { id, last }), ts, &mut out);
        }
        out
    }

    #[test]
    fn chunks_of_a_300000_byte_line_give_dockers_two_events() {
        let mut j = Joiner::default();
        let out = feed(&mut j, &[b'C'; 300_000], 16_384, "p1", 7);
        let lens: Vec<_> = out.iter().map(|(s, ts)| (s.len(), *ts)).collect();
        assert_eq!(lens, vec![(262_118, 7), (37_882, 7)]);
        assert_eq!(j.oldest_ms(), None);
    }

    #[test]
    fn a_character_split_across_chunks_is_rejoined() {
        let mut j = Joiner::default();
        let out = feed(&mut j, "€€".as_bytes(), 4, "p", 1);
        assert_eq!(out, vec![("€€".to_string(), 1)]);
    }

    #[test]
    fn complete_lines_pass_through_and_streams_do_not_mix() {
        let mut j = Joiner::default();
        let mut out = Vec::new();
        let first = Some(Chunk {
            id: "a",
            last: false,
        });
        j.push(Source::Stdout, b"out-", first, 1, &mut out);
        j.push(Source::Stderr, b"err", None, 2, &mut out);
        j.push(
            Source::Stdout,
            b"end",
            Some(Chunk {
                id: "a",
                last: true,
            }),
            3,
            &mut out,
        );
        assert_eq!(
            out,
            vec![("err".to_string(), 2), ("out-end".to_string(), 1)]
        );
    }

    #[test]
    fn an_unterminated_line_waits_for_the_interval() {
        let mut j = Joiner::default();
        let mut out = Vec::new();
        j.push(
            Source::Stdout,
            b"no newline",
            Some(Chunk {
                id: "z",
                last: false,
            }),
            1_000,
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(j.oldest_ms(), Some(1_000));
        j.expire(5_999, 5_000, &mut out);
        assert!(out.is_empty());
        j.expire(6_000, 5_000, &mut out);
        assert_eq!(out, vec![("no newline".to_string(), 1_000)]);
    }

    #[test]
    fn a_new_id_or_a_whole_line_ends_an_unfinished_one() {
        let mut j = Joiner::default();
        let mut out = Vec::new();
        j.push(
            Source::Stdout,
            b"a",
            Some(Chunk {
                id: "1",
                last: false,
            }),
            1,
            &mut out,
        );
        j.push(
            Source::Stdout,
            b"b",
            Some(Chunk {
                id: "2",
                last: false,
            }),
            2,
            &mut out,
        );
        j.push(Source::Stdout, b"c", None, 3, &mut out);
        let texts: Vec<_> = out.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c"]);
        j.take_all(&mut out);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn raw_split_counts_invalid_bytes_as_three() {
        assert_eq!(raw_split(b"abc", 2), 2);
        assert_eq!(raw_split(b"\xff\xffa", 6), 2);
        assert_eq!(raw_split(b"\xff\xffa", 5), 1);
        assert_eq!(raw_split("a€".as_bytes(), 3), 1);
    }
}
