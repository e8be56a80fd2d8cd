//! The `json-file` log driver, Docker's default: one JSON object per line in
//! `<id>-json.log` inside the container's log directory (preopened as `/logs`), with
//! `max-size` / `max-file` / `compress` rotation, and a reader for `burrow logs`.
//!
//! The work is done by plain modules that take a directory path (so unit tests run natively
//! on temp dirs); this file only binds them to the SDK's driver trait and the WIT reader.

#![deny(unsafe_code)]

pub mod compress;
pub mod decode;
pub mod encode;
pub mod options;
pub mod read;
pub mod rotate;

use std::cell::RefCell;

use burrow_plugin_sdk::log::driver::{self, LogDriver, Needs, Spec};
use burrow_plugin_sdk::log::opts::Options;
use burrow_plugin_sdk::log::{
    Container, Entry, Error, GuestReader, Kv, ReadOpts, Reader, chain, host,
};

use options::Config;
use read::LogReader;
use rotate::LogWriter;

/// The driver: one writer per container, exported as the component's `logging` interface.
pub struct JsonFile(LogWriter);

impl LogDriver for JsonFile {
    const SPEC: Spec = Spec {
        name: "json-file",
        description: "writes JSON lines to files in the container's log directory (Docker's default)",
        needs: Needs::LOG_DIR,
        options: options::OPTIONS,
    };

    type Config = Config;

    fn config(opts: &Options) -> Result<Config, Error> {
        Ok(Config::from_options(opts)?)
    }

    fn open(c: &Container, cfg: Config) -> Result<Self, Error> {
        let w = LogWriter::open(&host::log_dir(), &c.id, cfg, &c.attrs).map_err(internal)?;
        Ok(JsonFile(w))
    }

    fn write(&mut self, batch: Vec<Entry>) -> Result<(), Error> {
        let res = self.0.write(&batch).map_err(internal);
        report(self.0.take_warnings());
        res
    }

    fn flush(&mut self) -> Result<(), Error> {
        // Every `write` already ends with the bytes in the file. A pending gzip of `.1`
        // advances here too; one left unfinished is resumed when the next logger opens.
        self.0.step_gz(rotate::GZ_BUDGET_PER_FLUSH);
        report(self.0.take_warnings());
        Ok(())
    }
}

/// The message with its causes, for the host to show (the WIT error carries one string).
fn internal(e: impl std::error::Error) -> Error {
    Error::Internal(chain(&e))
}

fn report(warnings: Vec<String>) {
    for w in warnings {
        host::warn(&w);
    }
}

pub struct JsonReader(RefCell<LogReader>);

impl GuestReader for JsonReader {
    fn open(c: Container, opts: Vec<Kv>, ro: ReadOpts) -> Result<Reader, Error> {
        let cfg = driver::config::<JsonFile>(&opts)?;
        let r = LogReader::open(&host::log_dir(), &c.id, cfg, &ro).map_err(internal)?;
        Ok(Reader::new(JsonReader(RefCell::new(r))))
    }

    fn next(&self, max: u32) -> Result<Vec<Entry>, Error> {
        self.0.borrow_mut().next(max as usize).map_err(internal)
    }
}

burrow_plugin_sdk::log_driver!(JsonFile, reader = JsonReader);

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_plugin_sdk::log::Guest;
    use burrow_plugin_sdk::testing::{self, FakeHost};

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

    #[test]
    fn a_container_s_lines_land_in_its_json_log() {
        let host = FakeHost::new();
        let mut c = testing::container();
        c.attrs = vec![Kv {
            key: "tag".into(),
            value: "web".into(),
        }];
        let mut d: JsonFile = host.open_for(&c, &[("tag", "{{.Name}}")]).unwrap();
        d.write(vec![testing::stdout("hello"), testing::stderr("oops\t<b>")])
            .unwrap();
        d.flush().unwrap();
        assert_eq!(
            host.text(&format!("{}-json.log", c.id)),
            "{\"log\":\"hello\\n\",\"stream\":\"stdout\",\"attrs\":{\"tag\":\"web\"},\"time\":\"2026-11-22T07:48:58.969041395Z\"}\n\
             {\"log\":\"oops\\u0009\\u003cb\\u003e\\n\",\"stream\":\"stderr\",\"attrs\":{\"tag\":\"web\"},\"time\":\"2026-11-22T07:48:58.969041395Z\"}\n"
        );
        let e = host.open::<JsonFile>(&[("max-file", "0")]).err().unwrap();
        assert!(
            matches!(&e, Error::InvalidConfig(m) if m == "max-file cannot be less than 1"),
            "{e:?}"
        );
        burrow_plugin_sdk::testing::check_spec::<JsonFile>();
    }
}
