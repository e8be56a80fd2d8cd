//! `lines`: an example burrow log driver.
//!
//! Each entry becomes one line `<unix-seconds> <stream> <line>` in a file in the container's
//! log directory, which the host preopens as `/logs` because `describe` asks for `log-dir`.
//! Copy this crate to start your own driver: the formatting lives in plain functions that
//! `cargo test` checks natively, and the WIT glue stays thin.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;

use burrow_plugin_sdk::log::{
    Capabilities, Container, Entry, Error, Guest, GuestLogger, Kv, Logger, NoReader, PluginInfo,
    Source,
};

/// The name users pass to `--log-driver`.
const NAME: &str = "lines";

/// The driver. Its `Logger` is a WIT resource: the host calls its methods through `&self`,
/// so state lives behind a `RefCell`. It does not read its file back: the SDK's `NoReader`
/// refuses `burrow logs` with Docker's message, and the host's local cache answers instead.
pub struct Lines;

impl Guest for Lines {
    type Logger = LinesLogger;
    type Reader = NoReader;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "writes `<unix-seconds> <stream> <line>` lines to a file".into(),
            // Ask only for what you use: the user grants these at `burrow plugin install`.
            needs: Capabilities {
                log_dir: true,
                network: false,
                default_addresses: vec![],
                http_patterns: vec![],
                http: false,
                secrets: vec![],
            },
        }
    }

    fn validate(opts: Vec<Kv>) -> Result<(), Error> {
        Options::parse(&opts).map(drop)
    }

    /// `false`: the host keeps its own cache so that `burrow logs` still works.
    fn can_read() -> bool {
        false
    }
}

/// This driver's `--log-opt`s.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// `lines-file`: the file name inside the log directory (default `<container-id>.log`).
    pub file: Option<String>,
}

impl Options {
    pub fn parse(opts: &[Kv]) -> Result<Self, Error> {
        let mut out = Options { file: None };
        for kv in opts {
            match kv.key.as_str() {
                "lines-file" => {
                    if kv.value.is_empty() || kv.value.contains('/') || kv.value.starts_with('.') {
                        return Err(Error::InvalidConfig(format!(
                            "invalid lines-file '{}': give a plain file name",
                            kv.value
                        )));
                    }
                    out.file = Some(kv.value.clone());
                }
                // Docker's wording, which the host shows verbatim.
                other => {
                    return Err(Error::InvalidConfig(format!(
                        "unknown log opt '{other}' for {NAME} log driver"
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// Appends one entry as `<unix-seconds> <stream> <line>\n`. The host splits lines longer
/// than 16 KiB into chunks: only the last chunk (or a complete line) ends the output line.
pub fn format_entry(e: &Entry, out: &mut Vec<u8>) {
    let stream = match e.source {
        Source::Stdout => "stdout",
        Source::Stderr => "stderr",
    };
    let first_chunk = e.partial.as_ref().is_none_or(|p| p.ordinal <= 1);
    if first_chunk {
        out.extend_from_slice(format!("{} {stream} ", e.time_ns / 1_000_000_000).as_bytes());
    }
    out.extend_from_slice(&e.line);
    if e.partial.as_ref().is_none_or(|p| p.last) {
        out.push(b'\n');
    }
}

pub struct LinesLogger {
    file: RefCell<File>,
    buf: RefCell<Vec<u8>>,
}

impl GuestLogger for LinesLogger {
    fn open(c: Container, opts: Vec<Kv>) -> Result<Logger, Error> {
        let o = Options::parse(&opts)?;
        let name = o.file.unwrap_or_else(|| format!("{}.log", c.id));
        let path = format!("/logs/{name}");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::Unavailable(format!("cannot open {path}: {e}")))?;
        Ok(Logger::new(LinesLogger {
            file: RefCell::new(file),
            buf: RefCell::new(Vec::new()),
        }))
    }

    /// One `write` per batch: format everything, then one system call.
    fn write(&self, batch: Vec<Entry>) -> Result<(), Error> {
        let mut buf = self.buf.borrow_mut();
        buf.clear();
        for e in &batch {
            format_entry(e, &mut buf);
        }
        self.file
            .borrow_mut()
            .write_all(&buf)
            .map_err(|e| Error::Internal(format!("cannot write the log file: {e}")))
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}

// The component's exports exist only in the wasm build; native `cargo test` links without them.
#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::log::export_log_driver!(Lines);

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_plugin_sdk::log::Partial;

    fn entry(line: &str, source: Source, partial: Option<(u32, bool)>) -> Entry {
        Entry {
            time_ns: 1_795_333_738_969_041_395,
            source,
            line: line.into(),
            partial: partial.map(|(ordinal, last)| Partial {
                id: "p".into(),
                ordinal,
                last,
            }),
            attrs: vec![],
        }
    }

    #[test]
    fn formats_lines_and_joins_chunks() {
        let mut out = Vec::new();
        format_entry(&entry("hello", Source::Stdout, None), &mut out);
        format_entry(&entry("AAA", Source::Stderr, Some((1, false))), &mut out);
        format_entry(&entry("BBB", Source::Stderr, Some((2, true))), &mut out);
        format_entry(
            &entry("no-newline", Source::Stdout, Some((1, false))),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1795333738 stdout hello\n1795333738 stderr AAABBB\n1795333738 stdout no-newline"
        );
    }

    #[test]
    fn options_are_checked() {
        let kv = |k: &str, v: &str| Kv {
            key: k.into(),
            value: v.into(),
        };
        assert_eq!(
            Options::parse(&[kv("lines-file", "app.log")]).unwrap(),
            Options {
                file: Some("app.log".into())
            }
        );
        for bad in [kv("lines-file", "../x"), kv("max-size", "1m")] {
            assert!(matches!(
                Options::parse(&[bad]),
                Err(Error::InvalidConfig(_))
            ));
        }
        let Err(Error::InvalidConfig(m)) = Options::parse(&[kv("foo", "1")]) else {
            panic!("foo accepted");
        };
        assert_eq!(m, "unknown log opt 'foo' for lines log driver");
    }
}
