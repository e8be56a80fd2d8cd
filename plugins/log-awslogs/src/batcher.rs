//! PutLogEvents batches within CloudWatch's limits, counted as moby counts them.

use std::collections::VecDeque;

/// The per-event overhead CloudWatch adds to each message's UTF-8 length.
pub const PER_EVENT_BYTES: usize = 26;
pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// 256 KiB less the overhead: moby's `maximumBytesPerEvent`.
pub const MAX_EVENT_BYTES: usize = 262_144 - PER_EVENT_BYTES;

/// The message CloudWatch stores for `bytes`: every byte that is not part of valid UTF-8
/// becomes U+FFFD (3 bytes), one per byte, as Go's string iteration and JSON encoding do.
/// Its length is moby's "effective length".
pub fn effective(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for _ in chunk.invalid() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn split_point(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub timestamp_ms: i64,
    pub message: String,
}

/// Events waiting for one PutLogEvents call.
#[derive(Debug, Default)]
pub struct Batch {
    events: Vec<Event>,
    bytes: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn oldest_ms(&self) -> Option<i64> {
        self.events.iter().map(|e| e.timestamp_ms).min()
    }

    fn fits(&self, message_len: usize) -> bool {
        self.events.len() < MAX_BATCH_EVENTS
            && self.bytes + message_len + PER_EVENT_BYTES <= MAX_BATCH_BYTES
    }

    /// The events by timestamp, then in the order they were added (a stable sort).
    pub fn into_sorted(mut self) -> Vec<Event> {
        self.events.sort_by_key(|e| e.timestamp_ms);
        self.events
    }
}

/// The open batch plus the full ones waiting to be sent, oldest first.
#[derive(Debug, Default)]
pub struct Batcher {
    open: Batch,
    sealed: VecDeque<Vec<Event>>,
}

impl Batcher {
    /// Adds one message, split into events of at most [`MAX_EVENT_BYTES`]; a batch that
    /// cannot take the next event is sealed first. An empty message adds nothing (moby).
    pub fn add(&mut self, mut message: &str, timestamp_ms: i64) {
        while !message.is_empty() {
            let at = split_point(message, MAX_EVENT_BYTES);
            if !self.open.fits(at) {
                self.seal();
            }
            self.open.bytes += at + PER_EVENT_BYTES;
            self.open.events.push(Event {
                timestamp_ms,
                message: message[..at].to_string(),
            });
            message = &message[at..];
        }
    }

    /// Moves the open batch, if it holds anything, behind the sealed ones.
    pub fn seal(&mut self) {
        if !self.open.is_empty() {
            let full = std::mem::take(&mut self.open);
            self.sealed.push_back(full.into_sorted());
        }
    }

    pub fn has_sealed(&self) -> bool {
        !self.sealed.is_empty()
    }

    pub fn front(&self) -> Option<&[Event]> {
        self.sealed.front().map(Vec::as_slice)
    }

    pub fn pop_front(&mut self) -> Option<Vec<Event>> {
        self.sealed.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.sealed.is_empty()
    }

    /// Events held, sealed or not.
    pub fn held(&self) -> usize {
        self.open.len() + self.sealed.iter().map(Vec::len).sum::<usize>()
    }

    pub fn oldest_ms(&self) -> Option<i64> {
        let sealed = self
            .sealed
            .iter()
            .flat_map(|b| b.iter().map(|e| e.timestamp_ms));
        sealed.chain(self.open.oldest_ms()).min()
    }

    pub fn open_batch(&self) -> &Batch {
        &self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(b: &mut Batcher) -> Vec<Vec<usize>> {
        b.seal();
        std::iter::from_fn(|| b.pop_front())
            .map(|batch| batch.iter().map(|e| e.message.len()).collect())
            .collect()
    }

    #[test]
    fn invalid_bytes_count_three_each() {
        assert_eq!(effective(b"ok").len(), 2);
        assert_eq!(effective(b"a\xffb").len(), 5);
        // A truncated sequence is two invalid bytes in Go, so two replacements.
        assert_eq!(effective(b"\xe2\x82"), "\u{fffd}\u{fffd}");
        assert_eq!(effective("é€😀".as_bytes()).len(), 2 + 3 + 4);
    }

    #[test]
    fn a_300000_byte_line_becomes_262118_and_37882() {
        let mut b = Batcher::default();
        b.add(&"C".repeat(300_000), 1);
        assert_eq!(sizes(&mut b), vec![vec![262_118, 37_882]]);
    }

    #[test]
    fn splits_only_at_character_boundaries() {
        let mut b = Batcher::default();
        // 1 + 3·n bytes: the boundary at MAX_EVENT_BYTES falls inside a '€'.
        let line = format!("a{}", "€".repeat(100_000));
        b.add(&line, 1);
        b.seal();
        let batch = b.pop_front().unwrap();
        assert_eq!(batch[0].message.len(), 262_117);
        assert_eq!(batch[0].message.len() + batch[1].message.len(), line.len());
        assert!(batch[1].message.starts_with('€'));
    }

    #[test]
    fn ten_thousand_events_per_batch() {
        let mut b = Batcher::default();
        for i in 0..10_001 {
            b.add("y", i);
        }
        assert!(b.has_sealed());
        assert_eq!(b.front().unwrap().len(), 10_000);
        assert_eq!(b.held(), 10_001);
        assert_eq!(
            sizes(&mut b).iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10_000, 1]
        );
    }

    #[test]
    fn one_mebibyte_counting_26_bytes_per_event() {
        // 4 events of 262,118 + 26 = 1,048,576 exactly: the 5th starts a new batch.
        let mut b = Batcher::default();
        for _ in 0..4 {
            b.add(&"x".repeat(MAX_EVENT_BYTES), 1);
        }
        assert_eq!(b.open_batch().bytes(), MAX_BATCH_BYTES);
        assert!(!b.has_sealed());
        b.add("z", 2);
        assert!(b.has_sealed());
        // 3 full events leave 262,144 bytes: two events of 262,091 and 1 bytes fill them.
        let fill = |second: usize| {
            let mut b = Batcher::default();
            for _ in 0..3 {
                b.add(&"x".repeat(MAX_EVENT_BYTES), 1);
            }
            b.add(&"x".repeat(second), 1);
            b.add("", 1);
            b.add("y", 1);
            b
        };
        let exact = fill(262_091);
        assert!(!exact.has_sealed(), "an empty message adds no event");
        assert_eq!(exact.open_batch().bytes(), MAX_BATCH_BYTES);
        let over = fill(262_092);
        assert!(over.has_sealed());
        assert_eq!(over.front().unwrap().len(), 4);
    }

    #[test]
    fn sorted_by_timestamp_then_insertion() {
        let mut b = Batcher::default();
        b.add("b1", 20);
        b.add("a1", 10);
        b.add("b2", 20);
        b.add("a2", 10);
        b.add("c", 30);
        b.seal();
        let msgs: Vec<_> = b
            .pop_front()
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(msgs, ["a1", "a2", "b1", "b2", "c"]);
        assert!(b.is_empty());
    }

    #[test]
    fn oldest_covers_open_and_sealed() {
        let mut b = Batcher::default();
        assert_eq!(b.oldest_ms(), None);
        b.add("x", 50);
        b.seal();
        b.add("y", 40);
        assert_eq!(b.oldest_ms(), Some(40));
    }
}
