//! Resuming a batch that was partly delivered.
//!
//! When `write` returns [`Error::Unavailable`](super::Error::Unavailable) in
//! `mode=blocking`, the host calls `write` again later with the *same* batch. A driver that
//! delivers entry by entry (datagrams, acked events) may have sent some of it before the
//! failure; [`Resume`] remembers how many, so that the retry skips them instead of
//! delivering them twice.
//!
//! ```
//! use burrow_plugin_sdk::log::resume::Resume;
//! # use burrow_plugin_sdk::log::{Entry, Source};
//! # let entry = |line: &str| Entry {
//! #     time_ns: 1, source: Source::Stdout, line: line.into(), partial: None, attrs: vec![],
//! # };
//! let batch = [entry("a"), entry("b"), entry("c")];
//! let mut resume = Resume::default();
//! assert_eq!(resume.skip(&batch), 0);
//! // "a" reached the server, then the connection broke: the host will retry the batch.
//! resume.failed(&batch, 1);
//! assert_eq!(resume.skip(&batch), 1);
//! // The retry delivered the rest.
//! resume.clear();
//! assert_eq!(resume.skip(&batch), 0);
//! ```

use super::Entry;

/// What tells the host's retry of a batch from a new batch: the first entry's time and
/// length, and the number of entries. The host retries a batch unchanged and sends nothing
/// else in between, so this needs to be no stronger than that.
pub type BatchKey = (u64, usize, usize);

/// The key of `batch`; none for an empty batch.
pub fn batch_key(batch: &[Entry]) -> Option<BatchKey> {
    batch
        .first()
        .map(|e| (e.time_ns, e.line.len(), batch.len()))
}

/// How much of the last failed batch already reached the destination.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resume {
    key: Option<BatchKey>,
    done: usize,
}

impl Resume {
    /// How many leading entries of `batch` to skip: those an earlier failed call with the
    /// same batch delivered. Zero for any other batch.
    pub fn skip(&self, batch: &[Entry]) -> usize {
        let key = batch_key(batch);
        if key.is_some() && key == self.key {
            self.done.min(batch.len())
        } else {
            0
        }
    }

    /// Records that the first `done` entries of `batch` were delivered before the call
    /// failed (counting the ones [`skip`](Resume::skip) said to skip).
    pub fn failed(&mut self, batch: &[Entry], done: usize) {
        *self = Resume {
            key: batch_key(batch),
            done,
        };
    }

    /// Forgets the batch: it was delivered whole, or given up.
    pub fn clear(&mut self) {
        *self = Resume::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Source;

    fn entry(time_ns: u64, line: &str) -> Entry {
        Entry {
            time_ns,
            source: Source::Stdout,
            line: line.into(),
            partial: None,
            attrs: vec![],
        }
    }

    #[test]
    fn only_the_same_batch_is_resumed() {
        let batch = [entry(1, "a"), entry(2, "b")];
        let mut r = Resume::default();
        r.failed(&batch, 1);
        assert_eq!(r.skip(&batch), 1);
        assert_eq!(r.skip(&[entry(3, "a"), entry(4, "b")]), 0, "another time");
        assert_eq!(r.skip(&[entry(1, "ab"), entry(2, "b")]), 0, "another line");
        assert_eq!(r.skip(&batch[..1]), 0, "another length");
        assert_eq!(r.skip(&[]), 0);
    }

    #[test]
    fn skip_never_passes_the_batch() {
        let batch = [entry(1, "a")];
        let mut r = Resume::default();
        r.failed(&batch, 5);
        assert_eq!(r.skip(&batch), 1);
    }

    #[test]
    fn an_empty_batch_is_never_resumed() {
        let mut r = Resume::default();
        r.failed(&[], 3);
        assert_eq!(r.skip(&[]), 0);
    }
}
