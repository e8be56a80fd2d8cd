//! Allocates until memory runs out in `write` once a line says "bomb"; the allocation count
//! survives in the instance, so a fresh instance is visible to the test through `flush`
//! (after a line says "report").

use std::cell::RefCell;

use burrow_plugin_sdk::log::{
    Capabilities, Container, Entry, Error, Guest, GuestLogger, Kv, Logger, PluginInfo,
};

include!("../../common.rs");

struct Bomb;

impl Guest for Bomb {
    type Logger = Hoarder;
    type Reader = NoReader;
    fn describe() -> PluginInfo {
        info("bomb", Capabilities::none())
    }
    fn validate(_opts: Vec<Kv>) -> Result<(), Error> {
        Ok(())
    }
    fn can_read() -> bool {
        false
    }
}

struct Hoarder {
    hoard: RefCell<Vec<Vec<u8>>>,
    writes: RefCell<u32>,
    report: RefCell<bool>,
}

impl GuestLogger for Hoarder {
    fn open(_c: Container, _opts: Vec<Kv>) -> Result<Logger, Error> {
        Ok(Logger::new(Hoarder {
            hoard: RefCell::new(vec![]),
            writes: RefCell::new(0),
            report: RefCell::new(false),
        }))
    }
    fn write(&self, batch: Vec<Entry>) -> Result<(), Error> {
        *self.writes.borrow_mut() += 1;
        if batch.iter().any(|e| e.line == b"report") {
            *self.report.borrow_mut() = true;
        }
        if batch.iter().any(|e| e.line == b"bomb") {
            loop {
                self.hoard.borrow_mut().push(vec![0xa5; 1 << 20]);
            }
        }
        Ok(())
    }
    /// Once a line said "report": fails with how many writes this instance has seen.
    fn flush(&self) -> Result<(), Error> {
        if *self.report.borrow() {
            return Err(Error::Internal(format!("writes={}", self.writes.borrow())));
        }
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::log::export_log_driver!(Bomb);
