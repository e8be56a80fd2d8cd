//! A log driver built against a future `burrow:plugin@2.0.0`: the host must refuse it.

wit_bindgen::generate!({ world: "log-driver", path: "wit" });

use burrow::plugin::log_types::{Container, Entry, ReadOpts};
use burrow::plugin::types::{Capabilities, Error, Kv, PluginInfo};
use exports::burrow::plugin::logging::{Guest, GuestLogger, GuestReader, Logger, Reader};

struct V2;

impl Guest for V2 {
    type Logger = Nothing;
    type Reader = Nothing;
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "v2".into(),
            version: "2.0.0".into(),
            description: "from the future".into(),
            needs: Capabilities {
                log_dir: false,
                network: false,
                default_addresses: vec![],
                http_patterns: vec![],
                http: false,
                secrets: vec![],
            },
        }
    }
    fn validate(_opts: Vec<Kv>) -> Result<(), Error> {
        Ok(())
    }
    fn can_read() -> bool {
        false
    }
}

struct Nothing;

impl GuestLogger for Nothing {
    fn open(_c: Container, _opts: Vec<Kv>) -> Result<Logger, Error> {
        Ok(Logger::new(Nothing))
    }
    fn write(&self, _batch: Vec<Entry>) -> Result<(), Error> {
        Ok(())
    }
    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}

impl GuestReader for Nothing {
    fn open(_c: Container, _opts: Vec<Kv>, _ro: ReadOpts) -> Result<Reader, Error> {
        Err(Error::Unsupported("no".into()))
    }
    fn next(&self, _max: u32) -> Result<Vec<Entry>, Error> {
        Ok(vec![])
    }
}

#[cfg(target_arch = "wasm32")]
export!(V2);
