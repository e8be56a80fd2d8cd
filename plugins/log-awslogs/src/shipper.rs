//! One container's log stream: creation at open, then lines in, PutLogEvents out.
//!
//! Delivery contract with the host (see `write` in burrow.wit):
//! - `write` first retries the batches a failed send left behind. If they still cannot be
//!   sent, it returns `Unavailable` and takes nothing from the new entries, so the host keeps
//!   them (mode=blocking retries, mode=non-blocking counts them lost).
//! - Entries `write` accepted are the driver's to deliver: a later failed send keeps them
//!   (sealed batches, retried on the next `write`/`flush`) and is reported as `Unavailable`
//!   from `flush`; they are lost only if the instance dies, and a batch the service rejects
//!   as invalid (not retryable) is dropped with an error on the diag log.

use std::time::Duration;

/// The whole error chain on one line, as the user reads it.
pub use burrow_plugin_sdk::log::chain;

use crate::api::{ALREADY_EXISTS, ApiError, Client, Clock, RESOURCE_NOT_FOUND, Transport};
use crate::batcher::Batcher;
use crate::multiline::Multiline;
use crate::partial::{Chunk, Joiner, Line, Source};

/// Each host call runs under a 5 s deadline: the requests of one call share this much.
const CALL_BUDGET_MS: i64 = 4_500;
/// No single request may take longer than this.
const REQUEST_TIMEOUT_MS: i64 = 3_000;
/// A request is not started with less time than this left.
const MIN_REQUEST_MS: i64 = 300;

#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub group: String,
    pub stream: String,
    pub create_group: bool,
    pub create_stream: bool,
    pub multiline: Option<crate::multiline::Pattern>,
    pub flush_interval: Duration,
}

/// One line of container output, as the host delivers it.
#[derive(Debug, Clone)]
pub struct Input {
    pub source: Source,
    pub line: Vec<u8>,
    /// `(id, last)` for a chunk of a long or unterminated line.
    pub chunk: Option<(String, bool)>,
    pub time_ns: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("failed to create Cloudwatch log group")]
    CreateGroup(#[source] ApiError),
    #[error("failed to create Cloudwatch log stream")]
    CreateStream(#[source] ApiError),
    #[error(
        "cannot send {events} log events to CloudWatch Logs group {group:?}, stream {stream:?} (they are kept and sent again)"
    )]
    Put {
        events: usize,
        group: String,
        stream: String,
        #[source]
        source: ApiError,
    },
    #[error(
        "CloudWatch Logs answers too slowly: {events} log events for group {group:?}, stream {stream:?} wait for the next call"
    )]
    Slow {
        events: usize,
        group: String,
        stream: String,
    },
}

/// What the driver has to tell the user besides its results (diag log lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Warn(String),
    Error(String),
}

struct Budget {
    deadline_ms: i64,
}

impl Budget {
    fn new(clock: &dyn Clock) -> Budget {
        Budget {
            deadline_ms: clock.now_ms() + CALL_BUDGET_MS,
        }
    }

    /// The timeout for the next request, or None when too little time is left.
    fn next_timeout(&self, clock: &dyn Clock) -> Option<u32> {
        let left = self.deadline_ms - clock.now_ms();
        (left >= MIN_REQUEST_MS).then(|| left.min(REQUEST_TIMEOUT_MS) as u32)
    }
}

pub struct Shipper<T: Transport, C: Clock> {
    client: Client,
    transport: T,
    clock: C,
    cfg: StreamConfig,
    joiner: Joiner,
    multiline: Option<Multiline>,
    batcher: Batcher,
    last_tick_ms: i64,
    notices: Vec<Notice>,
}

impl<T: Transport, C: Clock> Shipper<T, C> {
    /// Creates the log stream (and the group, when asked and missing), as dockerd does
    /// before a container starts.
    pub fn open(
        client: Client,
        mut transport: T,
        clock: C,
        cfg: StreamConfig,
    ) -> Result<Self, ShipError> {
        if cfg.create_stream {
            let budget = Budget::new(&clock);
            let create_stream = |t: &mut T| {
                let timeout = budget.next_timeout(&clock).unwrap_or(MIN_REQUEST_MS as u32);
                match client.create_log_stream(t, &cfg.group, &cfg.stream, clock.now_ms(), timeout)
                {
                    Err(e) if e.code() == Some(ALREADY_EXISTS) => Ok(()),
                    r => r,
                }
            };
            match create_stream(&mut transport) {
                Ok(()) => {}
                Err(e) if cfg.create_group && e.code() == Some(RESOURCE_NOT_FOUND) => {
                    let timeout = budget.next_timeout(&clock).unwrap_or(MIN_REQUEST_MS as u32);
                    match client.create_log_group(
                        &mut transport,
                        &cfg.group,
                        clock.now_ms(),
                        timeout,
                    ) {
                        Ok(()) => {}
                        Err(e) if e.code() == Some(ALREADY_EXISTS) => {}
                        Err(e) => return Err(ShipError::CreateGroup(e)),
                    }
                    create_stream(&mut transport).map_err(ShipError::CreateStream)?;
                }
                Err(e) => return Err(ShipError::CreateStream(e)),
            }
        }
        let last_tick_ms = clock.now_ms();
        Ok(Shipper {
            client,
            transport,
            clock,
            multiline: cfg.multiline.clone().map(Multiline::new),
            cfg,
            joiner: Joiner::default(),
            batcher: Batcher::default(),
            last_tick_ms,
            notices: Vec::new(),
        })
    }

    fn interval_ms(&self) -> i64 {
        self.cfg.flush_interval.as_millis() as i64
    }

    /// Takes `batch` unless batches from earlier calls still cannot be sent.
    pub fn write(&mut self, batch: Vec<Input>) -> Result<(), ShipError> {
        let budget = Budget::new(&self.clock);
        if self.batcher.has_sealed() {
            self.deliver(&budget)?;
        }
        let mut lines = Vec::new();
        for input in &batch {
            let chunk = input
                .chunk
                .as_ref()
                .map(|(id, last)| Chunk { id, last: *last });
            let ts_ms = (input.time_ns / 1_000_000) as i64;
            self.joiner
                .push(input.source, &input.line, chunk, ts_ms, &mut lines);
        }
        self.route(lines);
        self.tick();
        // The entries are ours now: a failure here is the next call's to report.
        if let Err(e) = self.deliver(&budget) {
            self.notices.push(Notice::Warn(chain(&e)));
        }
        Ok(())
    }

    /// Sends what is due: everything once the flush interval has passed since the last
    /// time, and any full batch.
    pub fn flush(&mut self) -> Result<(), ShipError> {
        let budget = Budget::new(&self.clock);
        self.tick();
        self.deliver(&budget)
    }

    /// Sends everything held, the last call before the instance goes away; what cannot be
    /// sent is reported lost.
    pub fn close(&mut self) -> Result<(), ShipError> {
        let budget = Budget::new(&self.clock);
        let mut lines = Vec::new();
        self.joiner.take_all(&mut lines);
        self.route(lines);
        if let Some((text, ts)) = self.multiline.as_mut().and_then(Multiline::take) {
            self.batcher.add(&text, ts);
        }
        self.batcher.seal();
        let r = self.deliver(&budget);
        if r.is_err() {
            let lost = self.batcher.held();
            self.notices.push(Notice::Error(format!(
                "{lost} log events for CloudWatch Logs group {:?}, stream {:?} are lost: the logger closed before they could be sent",
                self.cfg.group, self.cfg.stream
            )));
        }
        r
    }

    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// Events held and not yet sent (tests and diagnostics).
    pub fn held(&self) -> usize {
        self.batcher.held()
    }

    fn route(&mut self, lines: Vec<Line>) {
        for (text, ts) in lines {
            match &mut self.multiline {
                Some(m) => {
                    if let Some((event, ets)) = m.push(&text, ts) {
                        self.batcher.add(&event, ets);
                    }
                }
                None => self.batcher.add(&text, ts),
            }
        }
    }

    /// moby's ticker: aged partial lines and multiline events join the batch, and once per
    /// interval the open batch is sealed for sending.
    fn tick(&mut self) {
        let now = self.clock.now_ms();
        let interval = self.interval_ms();
        let mut lines = Vec::new();
        self.joiner.expire(now, interval, &mut lines);
        self.route(lines);
        if let Some((text, ts)) = self
            .multiline
            .as_mut()
            .and_then(|m| m.expire(now, interval))
        {
            self.batcher.add(&text, ts);
        }
        let oldest_overdue = self
            .batcher
            .oldest_ms()
            .is_some_and(|t| now - t >= interval);
        if now - self.last_tick_ms >= interval || oldest_overdue || now < self.last_tick_ms {
            self.batcher.seal();
            self.last_tick_ms = now;
        }
    }

    /// Sends sealed batches, oldest first, while the budget lasts.
    fn deliver(&mut self, budget: &Budget) -> Result<(), ShipError> {
        while let Some(events) = self.batcher.front() {
            let Some(timeout) = budget.next_timeout(&self.clock) else {
                return Err(ShipError::Slow {
                    events: self.batcher.held(),
                    group: self.cfg.group.clone(),
                    stream: self.cfg.stream.clone(),
                });
            };
            let r = self.client.put_log_events(
                &mut self.transport,
                &self.cfg.group,
                &self.cfg.stream,
                events,
                self.clock.now_ms(),
                timeout,
            );
            match r {
                Ok(rejected) => {
                    let sent = self.batcher.pop_front().unwrap_or_default();
                    if rejected.any() {
                        self.notices.push(Notice::Warn(format!(
                            "CloudWatch Logs did not store some of {} log events (timestamps out of its range): {rejected:?}",
                            sent.len()
                        )));
                    }
                }
                Err(e) if e.retryable() => {
                    return Err(ShipError::Put {
                        events: self.batcher.held(),
                        group: self.cfg.group.clone(),
                        stream: self.cfg.stream.clone(),
                        source: e,
                    });
                }
                Err(e) => {
                    let dropped = self.batcher.pop_front().map_or(0, |b| b.len());
                    self.notices.push(Notice::Error(format!(
                        "CloudWatch Logs refused {dropped} log events for group {:?}, stream {:?}; they are dropped: {}",
                        self.cfg.group,
                        self.cfg.stream,
                        chain(&e)
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "shipper_tests.rs"]
mod tests;
