//! The `none` log driver: `burrow logs` has nothing to show, and nothing is kept.

use burrow_plugin_sdk::log::driver::{LogDriver, Needs, Spec};
use burrow_plugin_sdk::log::opts::Options;
use burrow_plugin_sdk::log::{Container, Entry, Error};

pub struct NoneDriver;

impl LogDriver for NoneDriver {
    const SPEC: Spec = Spec {
        name: "none",
        description: "discards container output",
        needs: Needs::NOTHING,
        // Takes no options at all, not even `tag`: any is refused with Docker's message.
        options: &[],
    };

    type Config = ();

    fn config(_opts: &Options) -> Result<(), Error> {
        Ok(())
    }

    fn open(_c: &Container, _cfg: ()) -> Result<Self, Error> {
        Ok(NoneDriver)
    }

    fn write(&mut self, _batch: Vec<Entry>) -> Result<(), Error> {
        Ok(())
    }
}

burrow_plugin_sdk::log_driver!(NoneDriver);

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_plugin_sdk::log::{Guest, Kv};
    use burrow_plugin_sdk::testing::{self, FakeHost};

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

    #[test]
    fn describes_itself_and_keeps_nothing() {
        let info = NoneDriver::describe();
        assert_eq!(info.name, "none");
        assert_eq!(info.description, "discards container output");
        let n = info.needs;
        assert!(!n.log_dir && !n.network && !n.http && n.secrets.is_empty());
        assert!(!NoneDriver::can_read());
        let host = FakeHost::new();
        let mut d: NoneDriver = host.open(&[]).unwrap();
        d.write(testing::lines(&["a", "b"])).unwrap();
        d.flush().unwrap();
        assert_eq!(std::fs::read_dir(host.log_dir()).unwrap().count(), 0);
    }
}
