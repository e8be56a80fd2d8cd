//! The reading side of `burrow logs`: the rotated files oldest first (`.N.gz` … `.1`), then
//! the current file, then whatever is appended to it, across rotations.
//!
//! Semantics follow moby (`loggerutils/logfile.go`, `follow.go`): `tail` takes the last N
//! lines of the files (a partial chunk is a line), then `since` drops entries until the first
//! one at or after it and stops filtering, and the first entry after `until` ends the read.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use burrow_plugin_sdk::log::{Entry, Partial, ReadOpts, Source};
use flate2::read::GzDecoder;

use crate::decode::{decode_line, parse_rfc3339};
use crate::options::Config;
use crate::rotate::{checked_id, log_file_name, rotated_path};

const CHUNK: usize = 64 * 1024;
/// How much of a file's first line identifies the file (a line is at most ~100 KiB).
const HEAD_MAX: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot open log file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read log file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container id {id:?} cannot name a log file")]
    BadId { id: String },
}

/// Complete lines out of a byte stream; a line still being written stays in the buffer
/// until its `\n` arrives.
struct LineSource<R> {
    path: PathBuf,
    inner: R,
    buf: Vec<u8>,
    start: usize,
    skip_lines: u64,
}

impl<R: Read> LineSource<R> {
    fn new(path: PathBuf, inner: R) -> Self {
        Self {
            path,
            inner,
            buf: Vec::new(),
            start: 0,
            skip_lines: 0,
        }
    }

    /// The next complete line without its `\n`, as a range of `self.buf`; `None` at the
    /// (current) end.
    fn next_line(&mut self) -> Result<Option<Range<usize>>, ReadError> {
        loop {
            if let Some(nl) = self.buf[self.start..].iter().position(|&c| c == b'\n') {
                let line = self.start..self.start + nl;
                self.start += nl + 1;
                if self.skip_lines > 0 {
                    self.skip_lines -= 1;
                    continue;
                }
                return Ok(Some(line));
            }
            self.buf.drain(..self.start);
            self.start = 0;
            let old = self.buf.len();
            self.buf.resize(old + CHUNK, 0);
            let n = loop {
                match self.inner.read(&mut self.buf[old..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let n = match n {
                Ok(n) => n,
                Err(source) => {
                    self.buf.truncate(old);
                    return Err(ReadError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
            };
            self.buf.truncate(old + n);
            if n == 0 {
                return Ok(None);
            }
        }
    }

    fn boxed(self) -> LineSource<Box<dyn Read>>
    where
        R: 'static,
    {
        LineSource {
            path: self.path,
            inner: Box::new(self.inner),
            buf: self.buf,
            start: self.start,
            skip_lines: self.skip_lines,
        }
    }
}

pub struct LogReader {
    current: PathBuf,
    max_file: u32,
    /// Finished files still to read, oldest first.
    queue: VecDeque<LineSource<Box<dyn Read>>>,
    /// The file at `current`'s name when we opened it, followed as it grows.
    cur: Option<LineSource<File>>,
    since: Option<u64>,
    until: Option<u64>,
    done: bool,
    /// Per stream: the id and last ordinal of an unfinished chunked line.
    chunks: [Option<(String, u32)>; 2],
}

impl LogReader {
    pub fn open(
        dir: &Path,
        container_id: &str,
        cfg: Config,
        ro: &ReadOpts,
    ) -> Result<Self, ReadError> {
        let id = checked_id(container_id).map_err(|_| ReadError::BadId {
            id: container_id.to_owned(),
        })?;
        let current = dir.join(log_file_name(id));
        let mut reader = LogReader {
            current: current.clone(),
            max_file: cfg.max_file,
            queue: VecDeque::new(),
            cur: None,
            since: ro.since_ns,
            until: ro.until_ns,
            done: false,
            chunks: [None, None],
        };
        // The current file first: if it rotates meanwhile, lines are read twice, never lost.
        let mut cur = match File::open(&current) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ReadError::Open {
                    path: current,
                    source,
                });
            }
        };
        let cur_end = match cur.as_mut() {
            Some(f) => complete_end(f).map_err(|source| ReadError::Read {
                path: current.clone(),
                source,
            })?,
            None => 0,
        };
        let mut need = ro.tail.map(u64::from);
        let mut cur_start = 0;
        if let (Some(n), Some(f)) = (need, cur.as_mut()) {
            let (start, found) = tail_start(f, cur_end, n).map_err(|source| ReadError::Read {
                path: current.clone(),
                source,
            })?;
            cur_start = start;
            need = Some(n - found);
        }
        if let Some(f) = cur.as_mut() {
            f.seek(SeekFrom::Start(cur_start))
                .map_err(|source| ReadError::Read {
                    path: current.clone(),
                    source,
                })?;
        }
        reader.cur = cur.map(|f| LineSource::new(current.clone(), f));
        // Rotated files, newest first, until `tail` is satisfied.
        for n in 1..cfg.max_file {
            if need == Some(0) {
                break;
            }
            let Some(mut src) = open_rotated(&reader.current, n, reader.since)? else {
                continue;
            };
            if let Some(k) = need {
                let found = src.count_and_skip(k)?;
                need = Some(k - found);
            }
            reader.queue.push_front(src.source);
        }
        Ok(reader)
    }

    /// Up to `max` entries; empty when caught up (or past `until`).
    pub fn next(&mut self, max: usize) -> Result<Vec<Entry>, ReadError> {
        let mut out = Vec::new();
        while out.len() < max && !self.done {
            if let Some(src) = self.queue.front_mut() {
                match src.next_line()? {
                    Some(r) => {
                        let parsed = decode_line(&src.buf[r]);
                        self.accept(parsed, &mut out);
                    }
                    None => {
                        self.queue.pop_front();
                    }
                }
                continue;
            }
            let Some(cur) = self.cur.as_mut() else {
                match File::open(&self.current) {
                    Ok(f) => {
                        self.cur = Some(LineSource::new(self.current.clone(), f));
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(source) => {
                        return Err(ReadError::Open {
                            path: self.current.clone(),
                            source,
                        });
                    }
                }
            };
            match cur.next_line()? {
                Some(r) => {
                    let parsed = decode_line(&cur.buf[r]);
                    self.accept(parsed, &mut out);
                }
                None => {
                    if !self.follow_rotation()? {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    fn accept(
        &mut self,
        parsed: Result<crate::decode::Line, crate::decode::DecodeError>,
        out: &mut Vec<Entry>,
    ) {
        // A line that does not parse (a torn write after a crash, a foreign file) is
        // skipped rather than ending the read.
        let Ok(mut line) = parsed else { return };
        let complete = line.log.last() == Some(&b'\n');
        if complete {
            line.log.pop();
        }
        let slot = &mut self.chunks[usize::from(line.source == Source::Stderr)];
        let partial = if !complete {
            let (id, ordinal) = slot.get_or_insert_with(|| (format!("{:x}", line.time_ns), 0));
            *ordinal += 1;
            Some(Partial {
                id: id.clone(),
                ordinal: *ordinal,
                last: false,
            })
        } else {
            slot.take().map(|(id, ordinal)| Partial {
                id,
                ordinal: ordinal + 1,
                last: true,
            })
        };
        if let Some(since) = self.since {
            if line.time_ns < since {
                return;
            }
            self.since = None;
        }
        if self.until.is_some_and(|until| line.time_ns > until) {
            self.done = true;
            return;
        }
        out.push(Entry {
            time_ns: line.time_ns,
            source: line.source,
            line: line.log,
            partial,
            attrs: line.attrs,
        });
    }

    /// Called at the end of the followed file. When the name now holds another file, the
    /// old one (which may have grown since we hit its end) is queued to be drained, followed
    /// by any rotated files we missed, then the new file. True when there is more to read.
    fn follow_rotation(&mut self) -> Result<bool, ReadError> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(false);
        };
        let now = match File::open(&self.current) {
            Ok(f) => f,
            // Mid-rotation: the name comes back at the next call.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(ReadError::Open {
                    path: self.current.clone(),
                    source,
                });
            }
        };
        let read_err = |path: &Path| {
            let path = path.to_owned();
            move |source| ReadError::Read { path, source }
        };
        let mut now = now;
        let new_head = first_line(&mut now, HEAD_MAX).map_err(read_err(&self.current))?;
        if new_head.is_empty() {
            return Ok(false);
        }
        let pos = cur
            .inner
            .stream_position()
            .map_err(read_err(&self.current))?;
        cur.inner
            .seek(SeekFrom::Start(0))
            .map_err(read_err(&self.current))?;
        let old_head = first_line(&mut cur.inner, HEAD_MAX).map_err(read_err(&self.current))?;
        cur.inner
            .seek(SeekFrom::Start(pos))
            .map_err(read_err(&self.current))?;
        let now_len = now
            .seek(SeekFrom::End(0))
            .map_err(read_err(&self.current))?;
        // Same file: the name's first line is ours, and it has not shrunk below what we read.
        if old_head.starts_with(&new_head) && now_len >= pos {
            return Ok(false);
        }
        if let Some(old) = self.cur.take() {
            self.queue.push_back(old.boxed());
        }
        // Which rotated file is ours? Those newer than it were missed; when ours is not
        // found (max-file 1, or `.1` still being compressed) there is nothing to recover.
        let mut missed = Vec::new();
        let mut found = false;
        for n in 1..self.max_file {
            let Some(mut r) = open_rotated(&self.current, n, None)? else {
                continue;
            };
            let head = r.head().map_err(read_err(&r.source.path))?;
            if !old_head.is_empty() && head == old_head {
                found = true;
                break;
            }
            missed.push(n);
        }
        if found {
            for n in missed.into_iter().rev() {
                if let Some(r) = open_rotated(&self.current, n, None)? {
                    self.queue.push_back(r.source);
                }
            }
        }
        now.seek(SeekFrom::Start(0))
            .map_err(read_err(&self.current))?;
        self.cur = Some(LineSource::new(self.current.clone(), now));
        Ok(true)
    }
}

/// `.n`, else `.n.gz` unless its gzip `lastTime` is before `since` (moby skips those).
fn open_rotated(current: &Path, n: u32, since: Option<u64>) -> Result<Option<Rotated>, ReadError> {
    let plain = rotated_path(current, n, false);
    match File::open(&plain) {
        Ok(f) => return Ok(Some(Rotated::plain(plain, f))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ReadError::Open {
                path: plain,
                source,
            });
        }
    }
    let gz = rotated_path(current, n, true);
    let mut f = match File::open(&gz) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ReadError::Open { path: gz, source }),
    };
    if let (Some(since), Some(last)) = (since, gzip_last_time(&mut f)) {
        if last < since {
            return Ok(None);
        }
    }
    f.seek(SeekFrom::Start(0))
        .map_err(|source| ReadError::Read {
            path: gz.clone(),
            source,
        })?;
    Ok(Some(Rotated::gz(gz, f)))
}

/// A rotated file opened for reading, plain or gzipped.
struct Rotated {
    source: LineSource<Box<dyn Read>>,
    /// Reopens the file from the start (counting lines and identifying it read it through).
    reopen: fn(&Path) -> io::Result<Box<dyn Read>>,
}

impl Rotated {
    fn plain(path: PathBuf, f: File) -> Self {
        Self {
            source: LineSource::new(path, Box::new(f)),
            reopen: |p| Ok(Box::new(File::open(p)?)),
        }
    }

    fn gz(path: PathBuf, f: File) -> Self {
        Self {
            source: LineSource::new(path, Box::new(GzDecoder::new(BufReader::new(f)))),
            reopen: |p| Ok(Box::new(GzDecoder::new(BufReader::new(File::open(p)?)))),
        }
    }

    /// Counts the file's lines, reopens it, and skips all but the last `want`. Returns how
    /// many lines it keeps.
    fn count_and_skip(&mut self, want: u64) -> Result<u64, ReadError> {
        let path = self.source.path.clone();
        let err = |source| ReadError::Read {
            path: path.clone(),
            source,
        };
        let mut total = 0u64;
        let mut chunk = vec![0u8; CHUNK];
        loop {
            let n = self.source.inner.read(&mut chunk).map_err(err)?;
            if n == 0 {
                break;
            }
            total += chunk[..n].iter().filter(|&&c| c == b'\n').count() as u64;
        }
        self.source = LineSource::new(path.clone(), (self.reopen)(&path).map_err(err)?);
        let keep = total.min(want);
        self.source.skip_lines = total - keep;
        Ok(keep)
    }

    fn head(&mut self) -> io::Result<Vec<u8>> {
        first_line(&mut self.source.inner, HEAD_MAX)
    }
}

/// The first line (with its `\n`, or what there is), at most `cap` bytes. Reads from the
/// reader's current position.
fn first_line<R: Read + ?Sized>(r: &mut R, cap: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < cap {
        let n = match r.read(&mut chunk) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        if n == 0 {
            break;
        }
        if let Some(nl) = chunk[..n].iter().position(|&c| c == b'\n') {
            out.extend_from_slice(&chunk[..=nl]);
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    out.truncate(cap);
    Ok(out)
}

/// The offset just past the last `\n` (a line still being written does not count yet).
fn complete_end(f: &mut File) -> io::Result<u64> {
    let len = f.seek(SeekFrom::End(0))?;
    let mut end = len;
    let mut chunk = vec![0u8; CHUNK];
    while end > 0 {
        let from = end.saturating_sub(CHUNK as u64);
        let n = (end - from) as usize;
        f.seek(SeekFrom::Start(from))?;
        f.read_exact(&mut chunk[..n])?;
        if let Some(i) = chunk[..n].iter().rposition(|&c| c == b'\n') {
            return Ok(from + i as u64 + 1);
        }
        end = from;
    }
    Ok(0)
}

/// Where the last `n` lines before `end` (which is 0 or just past a `\n`) start, and how
/// many lines that is (fewer than `n` when the file is shorter).
fn tail_start(f: &mut File, end: u64, n: u64) -> io::Result<(u64, u64)> {
    if n == 0 || end == 0 {
        return Ok((end, 0));
    }
    // The `\n` ending the last line is newline #1; the line after newline #(n+1) starts
    // the tail.
    let mut seen = 0u64;
    let mut pos = end;
    let mut chunk = vec![0u8; CHUNK];
    while pos > 0 {
        let from = pos.saturating_sub(CHUNK as u64);
        let len = (pos - from) as usize;
        f.seek(SeekFrom::Start(from))?;
        f.read_exact(&mut chunk[..len])?;
        for i in (0..len).rev() {
            if chunk[i] == b'\n' {
                seen += 1;
                if seen == n + 1 {
                    return Ok((from + i as u64 + 1, n));
                }
            }
        }
        pos = from;
    }
    Ok((0, seen))
}

/// moby's gzip FEXTRA `{"lastTime":"…"}`; `None` when absent, unreadable or Go's zero time.
fn gzip_last_time(f: &mut File) -> Option<u64> {
    let mut hdr = [0u8; 12];
    f.read_exact(&mut hdr).ok()?;
    if hdr[0..3] != [0x1f, 0x8b, 8] || hdr[3] & 4 == 0 {
        return None;
    }
    let xlen = u16::from_le_bytes([hdr[10], hdr[11]]) as usize;
    let mut extra = vec![0u8; xlen];
    f.read_exact(&mut extra).ok()?;
    let key = b"\"lastTime\":\"";
    let at = extra.windows(key.len()).position(|w| w == key)? + key.len();
    let len = extra[at..].iter().position(|&c| c == b'"')?;
    let value = &extra[at..at + len];
    if value.starts_with(b"0001-01-01T00:00:00") {
        return None;
    }
    parse_rfc3339(value)
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
