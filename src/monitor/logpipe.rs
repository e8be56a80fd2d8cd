//! The host side of a log driver, in the relay: container output cut into entries (lines,
//! with lines over 16 KiB split into partial chunks as Docker does), queued by `mode`, and
//! delivered in batches by a writer thread to the driver; the local cache is written as
//! entries arrive.
//!
//! `mode=blocking` lets back-pressure reach the container (the relay stops reading its
//! pipes while the queue is full); `mode=non-blocking` drops the new line when the buffer is
//! full. Lines the driver could not take are counted, never silently lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::plugin::{Entry, Logger, Partial, PluginError, Source};

/// Docker's copier cuts lines longer than this into partial chunks.
pub const MAX_LINE: usize = 16 * 1024;
/// A batch handed to the driver: at most this many entries or bytes.
const BATCH_ENTRIES: usize = 1000;
const BATCH_BYTES: usize = 256 * 1024;
/// What blocking mode queues before the relay stops reading.
const BLOCKING_QUEUE_BYTES: u64 = 1 << 20;
/// How long a stopping container's remaining lines may wait for a driver that is down.
const FINAL_GRACE: Duration = Duration::from_secs(5);

/// How the host feeds the driver (Docker's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Back-pressure reaches the container: it blocks on write while the driver lags.
    Blocking,
    /// A buffer of this many bytes; a line that does not fit is dropped and counted.
    NonBlocking { max_buffer: u64 },
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Cuts one stream into entries.
pub struct Splitter {
    source: Source,
    buf: Vec<u8>,
    /// The chunk count and first timestamp of a line being split.
    partial: Option<(String, u32, u64)>,
    seq: u64,
}

impl Splitter {
    pub fn new(source: Source) -> Splitter {
        Splitter {
            source,
            buf: Vec::new(),
            partial: None,
            seq: 0,
        }
    }

    fn entry(&mut self, line: Vec<u8>, last: Option<bool>, now: u64) -> Entry {
        let (partial, time_ns) = match last {
            None => (None, now),
            Some(last) => {
                let (id, ordinal, first) = self.partial.get_or_insert_with(|| {
                    self.seq += 1;
                    (format!("{:016x}{:08x}", now, self.seq), 0, now)
                });
                *ordinal += 1;
                let p = Partial {
                    id: id.clone(),
                    ordinal: *ordinal,
                    last,
                };
                let t = *first;
                if last {
                    self.partial = None;
                }
                (Some(p), t)
            }
        };
        Entry {
            time_ns,
            source: self.source,
            line,
            partial,
            attrs: Vec::new(),
        }
    }

    /// Feeds bytes; complete lines and full 16 KiB chunks come out.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Entry>) {
        let now = now_ns();
        while !bytes.is_empty() {
            let room = MAX_LINE - self.buf.len();
            match bytes[..bytes.len().min(room)]
                .iter()
                .position(|&b| b == b'\n')
            {
                Some(i) => {
                    self.buf.extend_from_slice(&bytes[..i]);
                    bytes = &bytes[i + 1..];
                    let line = std::mem::take(&mut self.buf);
                    let last = self.partial.is_some().then_some(true);
                    let e = self.entry(line, last, now);
                    out.push(e);
                }
                None => {
                    let take = bytes.len().min(room);
                    self.buf.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.buf.len() == MAX_LINE {
                        let line = std::mem::take(&mut self.buf);
                        let e = self.entry(line, Some(false), now);
                        out.push(e);
                    }
                }
            }
        }
    }

    /// End of the stream: an unterminated line goes out as a chunk that is not the last.
    pub fn finish(&mut self, out: &mut Vec<Entry>) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            let e = self.entry(line, Some(false), now_ns());
            out.push(e);
        }
    }
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    bytes: u64,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signals the writer (something queued, or closed) and the reader (room freed).
    changed: Condvar,
    dropped: AtomicU64,
    /// Why lines were lost last, for the `log_dropped` event.
    why: Mutex<Option<String>>,
    delivered: AtomicU64,
    /// Entries queued, and entries the writer is done with (delivered or lost).
    queued: AtomicU64,
    done: AtomicU64,
}

/// The pipeline: push entries in; a writer thread delivers them.
pub struct LogPipe {
    shared: Arc<Shared>,
    mode: Mode,
    writer: Option<JoinHandle<()>>,
    /// The local cache (dual logging), written as entries are pushed.
    cache: Option<Mutex<Logger>>,
}

/// How the pipeline ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub delivered: u64,
    pub dropped: u64,
    /// The last reason lines were lost.
    pub why: Option<String>,
}

fn entry_size(e: &Entry) -> u64 {
    e.line.len() as u64 + 64
}

impl LogPipe {
    /// Starts the writer. `cache` (dual logging) gets every entry as it is pushed, before it
    /// is queued for the driver: `logs` sees it at once whatever the driver does.
    pub fn start(driver: Logger, cache: Option<Logger>, mode: Mode) -> LogPipe {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            dropped: AtomicU64::new(0),
            why: Mutex::new(None),
            delivered: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            done: AtomicU64::new(0),
        });
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                crate::runtime::proc::block_all_signals();
                write_loop(&writer_shared, driver, mode)
            })
            .expect("spawning the log writer");
        LogPipe {
            shared,
            mode,
            writer: Some(writer),
            cache: cache.map(Mutex::new),
        }
    }

    /// Queues entries; in blocking mode waits for room first.
    pub fn push(&self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        if let Some(cache) = &self.cache {
            let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = cache.write(&entries).and_then(|()| cache.flush()) {
                tracing::warn!(%e, "the local log cache failed");
            }
        }
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        for e in entries {
            let size = entry_size(&e);
            match self.mode {
                Mode::Blocking => {
                    while q.bytes >= BLOCKING_QUEUE_BYTES && !q.closed {
                        q = self
                            .shared
                            .changed
                            .wait(q)
                            .unwrap_or_else(|e| e.into_inner());
                    }
                }
                Mode::NonBlocking { max_buffer } => {
                    // Docker's ring: an empty buffer always takes one message.
                    if !q.entries.is_empty() && q.bytes + size > max_buffer {
                        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut w) = self.shared.why.lock() {
                            w.get_or_insert_with(|| {
                                format!("the buffer of max-buffer-size {max_buffer} bytes was full")
                            });
                        }
                        continue;
                    }
                }
            }
            q.bytes += size;
            q.entries.push_back(e);
            self.shared.queued.fetch_add(1, Ordering::Relaxed);
        }
        drop(q);
        self.shared.changed.notify_all();
    }

    /// Waits (at most `limit`) until everything pushed so far is where `logs` reads it (the
    /// cache, when there is one, so a slow driver does not hold up the run's end), so that
    /// `logs` shows a run's output once the run's end is announced.
    pub fn sync(&self, limit: Duration) {
        if self.cache.is_some() {
            // Pushed entries are in the cache already.
            return;
        }
        let until = Instant::now() + limit;
        let target = self.shared.queued.load(Ordering::Relaxed);
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        while self.shared.done.load(Ordering::Relaxed) < target {
            let now = Instant::now();
            if now >= until {
                return;
            }
            q = self
                .shared
                .changed
                .wait_timeout(q, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Delivers what is queued (giving a driver that is down [`FINAL_GRACE`]) and stops.
    pub fn finish(mut self) -> Stats {
        self.close()
    }

    fn close(&mut self) -> Stats {
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.closed = true;
        }
        self.shared.changed.notify_all();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if let Some(cache) = &self.cache {
            let _ = cache.lock().unwrap_or_else(|e| e.into_inner()).flush();
        }
        Stats {
            delivered: self.shared.delivered.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            why: self.shared.why.lock().ok().and_then(|w| w.clone()),
        }
    }
}

impl Drop for LogPipe {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.close();
        }
    }
}

/// Takes the next batch, waiting up to `wait` for the first entry; None once closed and
/// empty.
fn next_batch(shared: &Shared, wait: Duration) -> Option<Vec<Entry>> {
    let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
    if q.entries.is_empty() && !q.closed {
        q = shared
            .changed
            .wait_timeout(q, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    if q.entries.is_empty() {
        return if q.closed { None } else { Some(Vec::new()) };
    }
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    while let Some(e) = q.entries.front() {
        if batch.len() == BATCH_ENTRIES || (!batch.is_empty() && bytes + e.line.len() > BATCH_BYTES)
        {
            break;
        }
        let e = q.entries.pop_front().expect("front exists");
        bytes += e.line.len();
        q.bytes -= entry_size(&e);
        batch.push(e);
    }
    drop(q);
    shared.changed.notify_all();
    Some(batch)
}

fn write_loop(shared: &Shared, mut driver: Logger, mode: Mode) {
    let lost = |n: u64, why: String| {
        shared.dropped.fetch_add(n, Ordering::Relaxed);
        if let Ok(mut w) = shared.why.lock() {
            *w = Some(why);
        }
    };
    // Lines the driver took since its last successful flush: a driver may hold them (the
    // fluentd driver's async buffer), and they are lost if no flush succeeds before the end.
    let mut unflushed = 0u64;
    let mut wrote_any = false;
    // When the container's output ended: from then on the driver has FINAL_GRACE in all.
    let mut closed_at: Option<Instant> = None;
    // A driver that failed after that gets no more calls once the grace is over (a working
    // one drains the queue whatever it takes: at most the queue's bytes).
    let mut failed_since_close = false;
    let closed = || shared.queue.lock().map(|q| q.closed).unwrap_or(true);
    let readable = |n: usize| {
        if n > 0 {
            let _lock = shared.queue.lock();
            shared.done.fetch_add(n as u64, Ordering::Relaxed);
            shared.changed.notify_all();
        }
    };
    while let Some(batch) = next_batch(shared, Duration::from_secs(1)) {
        if closed_at.is_none() && closed() {
            closed_at = Some(Instant::now());
        }
        let late = failed_since_close && closed_at.is_some_and(|t| t.elapsed() >= FINAL_GRACE);
        if !batch.is_empty() {
            let n = batch.len() as u64;
            let mut backoff = Duration::from_millis(100);
            let mut failed = false;
            loop {
                if (failed || failed_since_close)
                    && closed_at.is_some_and(|t| t.elapsed() >= FINAL_GRACE)
                {
                    tracing::warn!(
                        lines = n,
                        "log driver too slow after the container ended: lines lost"
                    );
                    lost(
                        n,
                        "the driver still failed 5 s after the container ended".into(),
                    );
                    break;
                }
                match driver.write(&batch) {
                    Ok(()) => {
                        shared.delivered.fetch_add(n, Ordering::Relaxed);
                        unflushed += n;
                        wrote_any = true;
                        break;
                    }
                    Err(PluginError::Unavailable { msg, .. }) if mode == Mode::Blocking => {
                        // The server is down: hold the batch (and so the container) and retry.
                        failed = true;
                        if closed_at.is_none() && closed() {
                            closed_at = Some(Instant::now());
                        }
                        tracing::debug!(%msg, "log driver unavailable, retrying");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                    Err(e) => {
                        tracing::warn!(lines = n, %e, "log driver failed: lines lost");
                        failed = true;
                        lost(n, e.to_string());
                        break;
                    }
                }
            }
            failed_since_close |= failed && closed_at.is_some();
        }
        // After every batch, so readers see it once `sync` returns, and once a second
        // while idle, so drivers that hold events (awslogs) send them in time.
        if wrote_any && !late && flush(&mut driver) {
            unflushed = 0;
        }
        readable(batch.len());
    }
    // The end: what the driver still holds gets the rest of the grace to go out.
    let end = closed_at.unwrap_or_else(Instant::now) + FINAL_GRACE;
    let mut backoff = Duration::from_millis(100);
    while unflushed > 0 {
        if flush(&mut driver) {
            unflushed = 0;
        } else if Instant::now() + backoff < end {
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(1));
        } else {
            tracing::warn!(
                lines = unflushed,
                "log driver could not deliver what it held: lines lost"
            );
            lost(
                unflushed,
                "the driver could not deliver what it held by 5 s after the container ended".into(),
            );
            unflushed = 0;
        }
    }
}

/// Flushes the driver; true when it delivered all it held.
fn flush(driver: &mut Logger) -> bool {
    match driver.flush() {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(%e, "log driver flush failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Entry> {
        let mut s = Splitter::new(Source::Stdout);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn lines_are_cut_like_dockers_copier() {
        let out = split(&[b"a\nb", b"c\n\nd"]);
        let lines: Vec<&[u8]> = out.iter().map(|e| e.line.as_slice()).collect();
        assert_eq!(lines, [&b"a"[..], b"bc", b"", b"d"]);
        assert!(out[..3].iter().all(|e| e.partial.is_none()));
        // The unterminated last line is a chunk that is not the last.
        let p = out[3].partial.as_ref().unwrap();
        assert_eq!((p.ordinal, p.last), (1, false));
    }

    #[test]
    fn long_lines_become_16k_chunks_sharing_the_first_timestamp() {
        let mut long = vec![b'x'; MAX_LINE * 2 + 10];
        long.push(b'\n');
        let out = split(&[&long[..5000], &long[5000..], b"next\n"]);
        assert_eq!(out.len(), 4);
        let sizes: Vec<usize> = out.iter().map(|e| e.line.len()).collect();
        assert_eq!(sizes, [MAX_LINE, MAX_LINE, 10, 4]);
        let parts: Vec<(u32, bool)> = out[..3]
            .iter()
            .map(|e| {
                let p = e.partial.as_ref().unwrap();
                (p.ordinal, p.last)
            })
            .collect();
        assert_eq!(parts, [(1, false), (2, false), (3, true)]);
        let id = &out[0].partial.as_ref().unwrap().id;
        assert!(
            out[..3]
                .iter()
                .all(|e| &e.partial.as_ref().unwrap().id == id)
        );
        assert!(out[..3].iter().all(|e| e.time_ns == out[0].time_ns));
        assert!(out[3].partial.is_none());
    }

    #[test]
    fn a_line_of_exactly_16k_is_one_chunk_then_an_empty_last_one() {
        // Docker's copier behaves the same: the newline arrives after a full buffer.
        let mut line = vec![b'y'; MAX_LINE];
        line.push(b'\n');
        let out = split(&[&line]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].line.len(), 0);
        assert!(out[1].partial.as_ref().unwrap().last);
    }
}
