//! The writing side: one `<id>-json.log` in the container's log directory, rotated the way
//! moby's `loggerutils/logfile.go` does it.
//!
//! A batch is encoded into one buffer and written with one `write` call at the end of
//! [`LogWriter::write`] (the host may read the file as soon as the call returns), except that
//! a due rotation first writes out what the buffer holds.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use burrow_plugin_sdk::log::{Entry, Kv};

use crate::compress::GzJob;
use crate::encode::Encoder;
use crate::options::Config;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot open log file {path}: check that the log directory is writable")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write to log file {path}: check free space in the log directory")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove the oldest log file {path} during rotation")]
    RemoveOldest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot rename log file {from} to {to} during rotation")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container id {id:?} cannot name a log file")]
    BadId { id: String },
}

/// The file name json-file uses for a container.
pub fn log_file_name(container_id: &str) -> String {
    format!("{container_id}-json.log")
}

/// `name.N` or `name.N.gz`.
pub fn rotated_path(current: &Path, n: u32, gz: bool) -> PathBuf {
    let mut s = current.as_os_str().to_owned();
    s.push(format!(".{n}{}", if gz { ".gz" } else { "" }));
    PathBuf::from(s)
}

pub fn checked_id(id: &str) -> Result<&str, WriteError> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(WriteError::BadId { id: id.to_owned() });
    }
    Ok(id)
}

pub struct LogWriter {
    path: PathBuf,
    file: Option<File>,
    /// Size of the current file, counting what `buf` holds.
    size: u64,
    cfg: Config,
    /// The last entry's time: the gzip `lastTime` of the file rotated next.
    last_time_ns: Option<u64>,
    encoder: Encoder,
    buf: Vec<u8>,
    /// `.1` being gzipped a slice per call.
    gz_job: Option<GzJob>,
    warnings: Vec<String>,
}

/// Input bytes gzipped per `write` call: well ahead of a batch (at most 256 KiB), so a job
/// is normally done long before the next rotation, and well inside the call's deadline.
const GZ_BUDGET_PER_WRITE: usize = 4 * 1024 * 1024;
/// Input bytes gzipped per `flush` call (about a second of work, far inside the deadline).
pub const GZ_BUDGET_PER_FLUSH: usize = 16 * 1024 * 1024;

impl LogWriter {
    /// Opens (appending) `<dir>/<id>-json.log`; an existing file counts towards `max-size`.
    pub fn open(
        dir: &Path,
        container_id: &str,
        cfg: Config,
        attrs: &[Kv],
    ) -> Result<Self, WriteError> {
        let path = dir.join(log_file_name(checked_id(container_id)?));
        let mut file = open_append(&path, false)?;
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|source| WriteError::Open {
                path: path.clone(),
                source,
            })?;
        let mut w = Self {
            path,
            file: Some(file),
            size,
            cfg,
            last_time_ns: None,
            encoder: Encoder::new(attrs),
            buf: Vec::with_capacity(256 * 1024),
            gz_job: None,
            warnings: Vec::new(),
        };
        // A `.1` left plain (the last instance stopped mid-job) is gzipped now: the next
        // rotation would overwrite it.
        if cfg.compress && cfg.max_file >= 2 {
            w.start_gz(None);
        }
        Ok(w)
    }

    /// Appends a batch, rotating before any entry that finds the file at or over `max-size`
    /// (so a file overshoots by at most one entry, as in Docker).
    pub fn write(&mut self, batch: &[Entry]) -> Result<(), WriteError> {
        for e in batch {
            if self.cfg.max_size.is_some_and(|max| self.size >= max) {
                self.write_out()?;
                self.rotate()?;
            }
            let before = self.buf.len();
            self.encoder.encode(e, &mut self.buf);
            self.size += (self.buf.len() - before) as u64;
            self.last_time_ns = Some(e.time_ns);
        }
        self.write_out()?;
        self.step_gz(GZ_BUDGET_PER_WRITE);
        Ok(())
    }

    /// Finishes any pending compression (the logger is being dropped, or the caller wants
    /// every file in its final shape).
    pub fn finish(&mut self) {
        self.step_gz(usize::MAX);
    }

    fn start_gz(&mut self, last_time_ns: Option<u64>) {
        let plain = rotated_path(&self.path, 1, false);
        match GzJob::start(&plain, last_time_ns) {
            Ok(job) => self.gz_job = job,
            Err(e) => self.warnings.push(format!(
                "cannot compress rotated log file {}, leaving it uncompressed: {e}",
                plain.display()
            )),
        }
    }

    /// Advances a pending gzip of `.1` by up to `budget` input bytes.
    pub fn step_gz(&mut self, budget: usize) {
        let Some(job) = self.gz_job.as_mut() else {
            return;
        };
        match job.step(budget) {
            Ok(false) => {}
            Ok(true) => self.gz_job = None,
            Err(e) => {
                self.warnings.push(format!(
                    "cannot compress rotated log file {}, leaving it uncompressed: {e}",
                    job.plain().display()
                ));
                self.gz_job = None;
            }
        }
    }

    /// Problems that lost no entries (a failed compression leaves `.1` uncompressed); the
    /// glue hands them to the host's diagnostics.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn write_out(&mut self) -> Result<(), WriteError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let file = match self.file.as_mut() {
            Some(f) => f,
            None => self.file.insert(open_append(&self.path, false)?),
        };
        let res = file.write_all(&self.buf);
        self.buf.clear();
        res.map_err(|source| {
            // Whatever part made it to disk is unknown; re-measure so rotation stays right.
            self.size = fs::metadata(&self.path)
                .map(|m| m.len())
                .unwrap_or(self.size);
            WriteError::Write {
                path: self.path.clone(),
                source,
            }
        })
    }

    /// moby's `rotate`: drop `.{max-file - 1}`, shift the others up, move the current file
    /// to `.1` (or unlink it when max-file is 1), start an empty file, then compress `.1`.
    fn rotate(&mut self) -> Result<(), WriteError> {
        // `.1` must be `.1.gz` before it moves to `.2.gz`.
        self.finish();
        self.file = None;
        let max = self.cfg.max_file;
        let gz = self.cfg.compress;
        if max < 2 {
            ignore_missing(fs::remove_file(&self.path)).map_err(|source| {
                WriteError::RemoveOldest {
                    path: self.path.clone(),
                    source,
                }
            })?;
        } else {
            let oldest = rotated_path(&self.path, max - 1, gz);
            ignore_missing(fs::remove_file(&oldest)).map_err(|source| {
                WriteError::RemoveOldest {
                    path: oldest,
                    source,
                }
            })?;
            for i in (2..max).rev() {
                let from = rotated_path(&self.path, i - 1, gz);
                let to = rotated_path(&self.path, i, gz);
                ignore_missing(fs::rename(&from, &to)).map_err(|source| WriteError::Rename {
                    from,
                    to,
                    source,
                })?;
            }
            let to = rotated_path(&self.path, 1, false);
            ignore_missing(fs::rename(&self.path, &to)).map_err(|source| WriteError::Rename {
                from: self.path.clone(),
                to,
                source,
            })?;
        }
        self.file = Some(open_append(&self.path, true)?);
        self.size = 0;
        if gz && max >= 2 {
            self.start_gz(self.last_time_ns);
        }
        Ok(())
    }
}

fn open_append(path: &Path, truncate: bool) -> Result<File, WriteError> {
    let mut o = OpenOptions::new();
    o.create(true);
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o640);
    o.open(path).map_err(|source| WriteError::Open {
        path: path.to_owned(),
        source,
    })
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_plugin_sdk::log::Source;
    use std::io::Read;

    fn entry(i: u64) -> Entry {
        Entry {
            // A 9-digit fraction keeps every line the same length (79 bytes).
            time_ns: 1_795_333_754_100_000_001 + i * 1000,
            source: Source::Stdout,
            line: format!("line {i:03}").into_bytes(),
            partial: None,
            attrs: vec![],
        }
    }

    fn cfg(max_size: Option<u64>, max_file: u32, compress: bool) -> Config {
        Config {
            max_size,
            max_file,
            compress,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn gunzip(path: &Path) -> (Vec<u8>, String) {
        let mut d = flate2::read::GzDecoder::new(File::open(path).unwrap());
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        let extra = d.header().unwrap().extra().unwrap().to_vec();
        (out, String::from_utf8(extra).unwrap())
    }

    #[test]
    fn writes_lines_and_appends_to_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path(), "abc", Config::default(), &[]).unwrap();
        w.write(&[entry(1), entry(2)]).unwrap();
        drop(w);
        let mut w = LogWriter::open(dir.path(), "abc", Config::default(), &[]).unwrap();
        w.write(&[entry(3)]).unwrap();
        let text = fs::read_to_string(dir.path().join("abc-json.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[2],
            r#"{"log":"line 003\n","stream":"stdout","time":"2026-11-22T07:49:14.100003001Z"}"#
        );
    }

    #[test]
    fn rotation_keeps_max_file_files_and_overshoots_by_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        // Each line is 79 bytes; max-size 150 puts two lines in a file.
        let mut w = LogWriter::open(dir.path(), "c", cfg(Some(150), 3, false), &[]).unwrap();
        let batch: Vec<Entry> = (0..9).map(entry).collect();
        w.write(&batch).unwrap();
        assert_eq!(
            names(dir.path()),
            ["c-json.log", "c-json.log.1", "c-json.log.2"]
        );
        let read = |n: &str| fs::read_to_string(dir.path().join(n)).unwrap();
        assert!(
            read("c-json.log.2").contains("line 004") && read("c-json.log.2").contains("line 005")
        );
        assert!(
            read("c-json.log.1").contains("line 006") && read("c-json.log.1").contains("line 007")
        );
        assert_eq!(read("c-json.log").lines().count(), 1);
        assert!(read("c-json.log").contains("line 008"));
    }

    #[test]
    fn max_file_one_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path(), "c", cfg(Some(100), 1, false), &[]).unwrap();
        w.write(&[entry(1), entry(2), entry(3)]).unwrap();
        assert_eq!(names(dir.path()), ["c-json.log"]);
        let text = fs::read_to_string(dir.path().join("c-json.log")).unwrap();
        assert!(text.contains("line 003") && !text.contains("line 002"));
    }

    #[test]
    fn compress_writes_gzip_with_last_time_extra() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path(), "c", cfg(Some(150), 3, true), &[]).unwrap();
        for i in 0..7 {
            w.write(&[entry(i)]).unwrap();
        }
        assert!(w.take_warnings().is_empty());
        assert_eq!(
            names(dir.path()),
            ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz"]
        );
        let (data, extra) = gunzip(&dir.path().join("c-json.log.1.gz"));
        let text = String::from_utf8(data).unwrap();
        assert!(
            text.contains("line 004") && text.contains("line 005"),
            "{text}"
        );
        // lastTime is the newest entry of the rotated file, entry 5.
        assert_eq!(extra, r#"{"lastTime":"2026-11-22T07:49:14.100005001Z"}"#);
        let raw = fs::read(dir.path().join("c-json.log.2.gz")).unwrap();
        // ID1 ID2 CM=deflate FLG=FEXTRA MTIME=0 .. OS=255, then XLEN (LE) and the JSON.
        assert_eq!(&raw[..4], &[0x1f, 0x8b, 8, 4]);
        assert_eq!(&raw[4..8], &[0, 0, 0, 0]);
        assert_eq!(raw[9], 255);
        let xlen = u16::from_le_bytes([raw[10], raw[11]]) as usize;
        assert_eq!(
            &raw[12..12 + xlen],
            br#"{"lastTime":"2026-11-22T07:49:14.100003001Z"}"#
        );
    }

    #[test]
    fn a_plain_dot_one_left_behind_is_compressed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("c-json.log.1"), "old\n").unwrap();
        let mut w = LogWriter::open(dir.path(), "c", cfg(Some(150), 3, true), &[]).unwrap();
        w.write(&[entry(1)]).unwrap();
        assert_eq!(names(dir.path()), ["c-json.log", "c-json.log.1.gz"]);
        let (data, extra) = gunzip(&dir.path().join("c-json.log.1.gz"));
        assert_eq!(data, b"old\n");
        assert_eq!(extra, r#"{"lastTime":"0001-01-01T00:00:00Z"}"#);
    }

    #[test]
    fn rejects_ids_that_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        for id in ["", "../x", ".hidden"] {
            assert!(matches!(
                LogWriter::open(dir.path(), id, Config::default(), &[]),
                Err(WriteError::BadId { .. })
            ));
        }
    }
}
