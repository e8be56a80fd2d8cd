//! fluentd-async's pending buffer: encoded events waiting for the server, bounded by
//! fluentd-buffer-limit bytes.

use std::collections::VecDeque;

/// One encoded event; `chunk` is its ack id when acks are requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub data: Vec<u8>,
    pub chunk: Option<String>,
}

/// Events in the order they must reach the server.
#[derive(Debug)]
pub struct Pending {
    records: VecDeque<Record>,
    bytes: usize,
    limit: usize,
}

/// Without acks, pending events go out in sends of about this size, so that one call
/// never holds more than this much twice in memory.
const SEND_BYTES: usize = 256 * 1024;

impl Pending {
    pub fn new(limit: usize) -> Self {
        Pending {
            records: VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes all of `records`, or none when they would pass the limit (so that the caller
    /// can count exactly the refused ones as lost).
    pub fn push_all(&mut self, records: Vec<Record>) -> Result<(), Vec<Record>> {
        let size: usize = records.iter().map(|r| r.data.len()).sum();
        if self.bytes + size > self.limit {
            return Err(records);
        }
        self.bytes += size;
        self.records.extend(records);
        Ok(())
    }

    /// The next send: the oldest acked event alone, or without acks the oldest events up to
    /// 256 KiB together. Returns the bytes, the chunk to wait for and how many
    /// events it covers.
    pub fn next_send(&self) -> Option<(Vec<u8>, Option<String>, usize)> {
        let first = self.records.front()?;
        if first.chunk.is_some() {
            return Some((first.data.clone(), first.chunk.clone(), 1));
        }
        let mut data = Vec::new();
        let mut n = 0;
        for r in &self.records {
            if r.chunk.is_some() || (n > 0 && data.len() + r.data.len() > SEND_BYTES) {
                break;
            }
            data.extend_from_slice(&r.data);
            n += 1;
        }
        Some((data, None, n))
    }

    /// Forgets the `n` oldest events: they were delivered.
    pub fn delivered(&mut self, n: usize) {
        for r in self.records.drain(..n.min(self.records.len())) {
            self.bytes -= r.data.len();
        }
    }

    /// Everything held, oldest first.
    pub fn into_records(self) -> Vec<Record> {
        self.records.into()
    }

    /// Drops everything; returns how many events that was.
    pub fn clear(&mut self) -> usize {
        let n = self.records.len();
        self.records.clear();
        self.bytes = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(len: usize, chunk: Option<&str>) -> Record {
        Record {
            data: vec![b'x'; len],
            chunk: chunk.map(str::to_string),
        }
    }

    #[test]
    fn a_batch_is_taken_whole_or_not_at_all() {
        let mut p = Pending::new(100);
        p.push_all(vec![rec(40, None), rec(40, None)]).unwrap();
        let refused = p.push_all(vec![rec(10, None), rec(11, None)]).unwrap_err();
        assert_eq!(refused.len(), 2);
        assert_eq!((p.len(), p.bytes()), (2, 80));
        p.push_all(vec![rec(20, None)]).unwrap();
        assert_eq!((p.len(), p.bytes()), (3, 100), "exactly the limit fits");
    }

    #[test]
    fn sends_group_unacked_events_and_take_acked_ones_alone() {
        let mut p = Pending::new(usize::MAX);
        p.push_all(vec![rec(3, None), rec(4, None)]).unwrap();
        assert_eq!(p.next_send(), Some((vec![b'x'; 7], None, 2)));
        p.delivered(2);
        assert_eq!((p.len(), p.bytes()), (0, 0));
        assert_eq!(p.next_send(), None);

        p.push_all(vec![rec(3, Some("c1")), rec(4, Some("c2"))])
            .unwrap();
        assert_eq!(
            p.next_send(),
            Some((vec![b'x'; 3], Some("c1".to_string()), 1))
        );
    }

    #[test]
    fn unacked_sends_stop_near_their_size() {
        let mut p = Pending::new(usize::MAX);
        p.push_all(vec![
            rec(SEND_BYTES - 10, None),
            rec(20, None),
            rec(5, None),
        ])
        .unwrap();
        let (data, _, n) = p.next_send().unwrap();
        assert_eq!((data.len(), n), (SEND_BYTES - 10, 1));
        p.delivered(n);
        assert_eq!(p.next_send().unwrap().2, 2);
        assert_eq!(p.clear(), 2);
        assert_eq!(p.bytes(), 0);
    }
}
