//! The `json-file` log driver, Docker's default: one JSON object per line in
//! `<id>-json.log` inside the container's log directory (preopened as `/logs`), with
//! `max-size` / `max-file` / `compress` rotation, and a reader for `burrow logs`.
//!
//! The work is done by plain modules that take a directory path (so unit tests run natively
//! on temp dirs); this file only adapts them to the WIT resources.

#![deny(unsafe_code)]

pub mod compress;
pub mod decode;
pub mod encode;
pub mod options;
pub mod read;
pub mod rotate;

use std::cell::RefCell;
use std::path::Path;

use burrow_plugin_sdk::log::{
    Capabilities, Container, Entry, Error, Guest, GuestLogger, GuestReader, Kv, Logger, PluginInfo,
    ReadOpts, Reader,
};

use options::Config;
use read::LogReader;
use rotate::LogWriter;

/// Where the host preopens the container's log directory.
const LOG_DIR: &str = "/logs";

/// The driver, exported as the component's `logging` interface on wasm32.
pub struct JsonFile;

impl Guest for JsonFile {
    type Logger = JsonLogger;
    type Reader = JsonReader;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "json-file".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "writes JSON lines to files in the container's log directory (Docker's default)"
                    .into(),
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
        Config::parse(&opts).map(drop).map_err(invalid)
    }

    fn can_read() -> bool {
        true
    }
}

fn invalid(e: options::OptionError) -> Error {
    Error::InvalidConfig(e.to_string())
}

/// The message with its causes, for the host to show (the WIT error carries one string).
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        cur = s.source();
    }
    msg
}

pub struct JsonLogger(RefCell<LogWriter>);

impl GuestLogger for JsonLogger {
    fn open(c: Container, opts: Vec<Kv>) -> Result<Logger, Error> {
        let cfg = Config::parse(&opts).map_err(invalid)?;
        let w = LogWriter::open(Path::new(LOG_DIR), &c.id, cfg, &c.attrs)
            .map_err(|e| Error::Internal(chain(&e)))?;
        Ok(Logger::new(JsonLogger(RefCell::new(w))))
    }

    fn write(&self, batch: Vec<Entry>) -> Result<(), Error> {
        let mut w = self.0.borrow_mut();
        let res = w.write(&batch).map_err(|e| Error::Internal(chain(&e)));
        report(w.take_warnings());
        res
    }

    fn flush(&self) -> Result<(), Error> {
        // Every `write` already ends with the bytes in the file. A pending gzip of `.1`
        // advances here too; one left unfinished is resumed when the next logger opens.
        let mut w = self.0.borrow_mut();
        w.step_gz(rotate::GZ_BUDGET_PER_FLUSH);
        report(w.take_warnings());
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
fn report(warnings: Vec<String>) {
    use burrow_plugin_sdk::log::diag;
    for w in warnings {
        diag::log(diag::Level::Warn, &w);
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn report(_warnings: Vec<String>) {}

pub struct JsonReader(RefCell<LogReader>);

impl GuestReader for JsonReader {
    fn open(c: Container, opts: Vec<Kv>, ro: ReadOpts) -> Result<Reader, Error> {
        let cfg = Config::parse(&opts).map_err(invalid)?;
        let r = LogReader::open(Path::new(LOG_DIR), &c.id, cfg, &ro)
            .map_err(|e| Error::Internal(chain(&e)))?;
        Ok(Reader::new(JsonReader(RefCell::new(r))))
    }

    fn next(&self, max: u32) -> Result<Vec<Entry>, Error> {
        self.0
            .borrow_mut()
            .next(max as usize)
            .map_err(|e| Error::Internal(chain(&e)))
    }
}

// Native builds (unit tests) carry no component exports: their names do not link there.
#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::log::export_log_driver!(JsonFile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_itself_as_json_file_needing_a_log_dir() {
        let info = JsonFile::describe();
        assert_eq!(info.name, "json-file");
        assert!(info.needs.log_dir && !info.needs.network && !info.needs.http);
        assert!(JsonFile::can_read());
    }

    #[test]
    fn validate_reports_dockers_message() {
        let err = JsonFile::validate(vec![Kv {
            key: "foo".into(),
            value: "1".into(),
        }])
        .unwrap_err();
        assert!(
            matches!(err, Error::InvalidConfig(ref m) if m == "unknown log opt 'foo' for json-file log driver"),
            "{err:?}"
        );
    }

    #[test]
    fn chain_includes_the_cause() {
        let e = rotate::WriteError::Open {
            path: "/logs/x-json.log".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(
            chain(&e),
            "cannot open log file /logs/x-json.log: check that the log directory is writable: permission denied"
        );
    }
}
