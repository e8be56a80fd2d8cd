//! Loops forever in `write` once a line says "spin"; otherwise behaves.

use burrow_plugin_sdk::log::{
    Capabilities, Container, Entry, Error, Guest, GuestLogger, Kv, Logger, PluginInfo,
};

include!("../../common.rs");

struct Spin;

impl Guest for Spin {
    type Logger = Spinner;
    type Reader = NoReader;
    fn describe() -> PluginInfo {
        info("spin", Capabilities::none())
    }
    fn validate(_opts: Vec<Kv>) -> Result<(), Error> {
        Ok(())
    }
    fn can_read() -> bool {
        false
    }
}

struct Spinner;

impl GuestLogger for Spinner {
    fn open(_c: Container, _opts: Vec<Kv>) -> Result<Logger, Error> {
        Ok(Logger::new(Spinner))
    }
    fn write(&self, batch: Vec<Entry>) -> Result<(), Error> {
        if batch.iter().any(|e| e.line == b"spin") {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Ok(())
    }
    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::log::export_log_driver!(Spin);
