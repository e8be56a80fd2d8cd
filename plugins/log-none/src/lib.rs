//! The `none` log driver: `burrow logs` has nothing to show, and nothing is kept.
// Native builds (unit tests) have no exports, so nothing would use the driver there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use burrow_plugin_sdk::log::{
    Capabilities, Container, Entry, Error, Guest, GuestLogger, Kv, Logger, NoReader, PluginInfo,
};

struct NoneDriver;

impl Guest for NoneDriver {
    type Logger = Discard;
    type Reader = NoReader;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "none".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "discards container output".into(),
            needs: Capabilities::none(),
        }
    }

    fn validate(opts: Vec<Kv>) -> Result<(), Error> {
        match opts.first() {
            Some(kv) => Err(Error::InvalidConfig(format!(
                "unknown log opt '{}' for none log driver",
                kv.key
            ))),
            None => Ok(()),
        }
    }

    fn can_read() -> bool {
        false
    }
}

struct Discard;

impl GuestLogger for Discard {
    fn open(_c: Container, _opts: Vec<Kv>) -> Result<Logger, Error> {
        Ok(Logger::new(Discard))
    }
    fn write(&self, _batch: Vec<Entry>) -> Result<(), Error> {
        Ok(())
    }
    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}

// Native builds (unit tests) carry no component exports: their names do not link there.
#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::log::export_log_driver!(NoneDriver);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_any_option_with_dockers_message() {
        let err = NoneDriver::validate(vec![Kv {
            key: "max-size".into(),
            value: "1m".into(),
        }])
        .unwrap_err();
        assert!(
            matches!(err, Error::InvalidConfig(ref m) if m == "unknown log opt 'max-size' for none log driver"),
            "{err:?}"
        );
        assert!(NoneDriver::validate(vec![]).is_ok());
    }
}
