//! Gzipping a rotated file (`.1` → `.1.gz`) a slice at a time.
//!
//! dockerd compresses in a goroutine so writes never wait for it. A plugin call has a
//! deadline and no threads, so the writer advances the job by a bounded amount per call
//! instead, and finishes it outright only when the next rotation needs `.1.gz` in place.
//! Until the job is done `.1` stays readable (readers try the plain name first, as moby's do).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};

use burrow_plugin_sdk::time::rfc3339_nano;

/// The gzip FEXTRA payload moby writes: `json.Marshal(rotateFileMetadata{LastTime})`, raw
/// (no RFC 1952 subfield framing). A zero Go time marshals as year 1.
pub fn last_time_extra(last_time_ns: Option<u64>) -> Vec<u8> {
    let t = match last_time_ns {
        Some(ns) => rfc3339_nano(ns),
        None => "0001-01-01T00:00:00Z".to_owned(),
    };
    format!("{{\"lastTime\":\"{t}\"}}").into_bytes()
}

pub struct GzJob {
    plain: PathBuf,
    gz: PathBuf,
    src: File,
    enc: Option<GzEncoder<BufWriter<File>>>,
    chunk: Vec<u8>,
}

impl GzJob {
    /// Starts compressing `plain` into `plain.gz`; `None` when `plain` does not exist.
    pub fn start(plain: &Path, last_time_ns: Option<u64>) -> io::Result<Option<Self>> {
        let src = match File::open(plain) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut gz = plain.as_os_str().to_owned();
        gz.push(".gz");
        let gz = PathBuf::from(gz);
        let mut o = OpenOptions::new();
        o.create(true).write(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o640);
        let out = o.open(&gz)?;
        // Go's gzip writer: MTIME 0, OS 255 (unknown), default level.
        let enc = GzBuilder::new()
            .extra(last_time_extra(last_time_ns))
            .mtime(0)
            .operating_system(255)
            .write(BufWriter::new(out), Compression::default());
        Ok(Some(Self {
            plain: plain.to_owned(),
            gz,
            src,
            enc: Some(enc),
            chunk: vec![0; 64 * 1024],
        }))
    }

    pub fn plain(&self) -> &Path {
        &self.plain
    }

    /// Compresses up to `budget` more input bytes. `Ok(true)` once `.gz` is complete and the
    /// plain file removed. On error the partial `.gz` is removed and the plain file kept.
    pub fn step(&mut self, budget: usize) -> io::Result<bool> {
        let res = self.step_inner(budget);
        if res.is_err() {
            self.enc = None;
            let _ = fs::remove_file(&self.gz);
        }
        res
    }

    fn step_inner(&mut self, budget: usize) -> io::Result<bool> {
        let Some(enc) = self.enc.as_mut() else {
            return Ok(true);
        };
        let mut done = 0;
        while done < budget {
            let n = match self.src.read(&mut self.chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => other?,
            };
            if n == 0 {
                if let Some(enc) = self.enc.take() {
                    enc.finish()?.flush()?;
                }
                fs::remove_file(&self.plain)?;
                return Ok(true);
            }
            enc.write_all(&self.chunk[..n])?;
            done += n;
        }
        Ok(false)
    }

    /// Runs the job to the end.
    pub fn finish(&mut self) -> io::Result<()> {
        while !self.step(usize::MAX)? {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_in_slices_and_removes_the_plain_file() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("x.1");
        let data: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
        fs::write(&plain, &data).unwrap();
        let mut job = GzJob::start(&plain, Some(1_000_000_001)).unwrap().unwrap();
        assert!(!job.step(100_000).unwrap());
        assert!(
            plain.exists(),
            "the plain file stays until the .gz is complete"
        );
        while !job.step(100_000).unwrap() {}
        assert!(!plain.exists());
        let mut d = flate2::read::GzDecoder::new(File::open(dir.path().join("x.1.gz")).unwrap());
        let mut back = Vec::new();
        d.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(
            d.header().unwrap().extra().unwrap(),
            br#"{"lastTime":"1970-01-01T00:00:01.000000001Z"}"#
        );
    }

    #[test]
    fn nothing_to_do_without_the_plain_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            GzJob::start(&dir.path().join("absent.1"), None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn zero_last_time_is_gos_zero_time() {
        assert_eq!(
            last_time_extra(None),
            br#"{"lastTime":"0001-01-01T00:00:00Z"}"#
        );
    }
}
