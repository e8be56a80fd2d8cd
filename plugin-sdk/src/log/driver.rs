//! A log driver as plain Rust: implement [`LogDriver`], export it with
//! [`log_driver!`](crate::log_driver), and the SDK does the rest of the WIT world —
//! `describe` from the [`Spec`], `validate` from the declared options, `can-read` and the
//! reader that refuses, the `logger` resource around your type.

use std::cell::RefCell;

use super::opts::{Opt, Options};
use super::{Capabilities, Container, Entry, Error, GuestLogger, Kv, Logger, PluginInfo};

/// Who a driver is and what it needs. `describe` is made from it, with the driver crate's
/// version.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The name users pass to `--log-driver`.
    pub name: &'static str,
    /// One line for `burrow plugin ls`.
    pub description: &'static str,
    pub needs: Needs,
    /// The `--log-opt`s it takes, in the order Docker checks them.
    pub options: &'static [Opt],
}

impl Spec {
    /// What `describe` returns.
    pub fn info(&self, version: &str) -> PluginInfo {
        PluginInfo {
            name: self.name.into(),
            version: version.into(),
            description: self.description.into(),
            needs: self.needs.capabilities(),
        }
    }
}

/// The capabilities a driver asks for, as `const` data (`describe` turns it into the WIT
/// `capabilities`). The user grants them at `burrow plugin install`; an instance gets no
/// more than what was both asked for and granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// A directory of its own per container, [`host::log_dir`](super::host::log_dir).
    pub log_dir: bool,
    /// Connections ([`host::Conn`](super::host::Conn)) to the addresses the options name,
    /// or to these defaults when none does.
    pub network: bool,
    pub default_addresses: &'static [&'static str],
    /// Requests ([`host::http_send`](super::host::http_send)) to URLs the options name, or
    /// matching these patterns (`*` is one DNS label).
    pub http: bool,
    pub http_patterns: &'static [&'static str],
    /// Named secrets ([`host::secret`](super::host::secret)).
    pub secrets: &'static [&'static str],
}

impl Needs {
    /// No files, no network, no HTTP, no secrets.
    pub const NOTHING: Needs = Needs {
        log_dir: false,
        network: false,
        default_addresses: &[],
        http: false,
        http_patterns: &[],
        secrets: &[],
    };

    /// The container's log directory alone.
    pub const LOG_DIR: Needs = Needs {
        log_dir: true,
        ..Needs::NOTHING
    };

    /// Connections, to `default_addresses` when no option names an address.
    pub const fn network(default_addresses: &'static [&'static str]) -> Needs {
        Needs {
            network: true,
            default_addresses,
            ..Needs::NOTHING
        }
    }

    /// HTTP, to URLs matching `patterns` as well as those the options name.
    pub const fn http(patterns: &'static [&'static str]) -> Needs {
        Needs {
            http: true,
            http_patterns: patterns,
            ..Needs::NOTHING
        }
    }

    /// These named secrets as well.
    pub const fn with_secrets(self, names: &'static [&'static str]) -> Needs {
        Needs {
            secrets: names,
            ..self
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Capabilities {
            log_dir: self.log_dir,
            network: self.network,
            default_addresses: owned(self.default_addresses),
            http_patterns: owned(self.http_patterns),
            http: self.http,
            secrets: owned(self.secrets),
        }
    }
}

/// A log driver. One value of it serves one container, from `open` until the host drops
/// it (implement `Drop` to send what is left: there is no close call).
///
/// The host calls `write` with batches of at most 1000 entries or 256 KiB, oldest first,
/// under a 5 s deadline, and `flush` at least once a second while lines flow and before the
/// drop. Return [`Error::Unavailable`] when the destination is down: with `mode=blocking`
/// the host offers the same batch again later ([`resume`](super::resume) helps skip what
/// already went out). Any other error drops the batch and counts its lines as lost.
pub trait LogDriver: Sized + 'static {
    const SPEC: Spec;

    /// What `open` needs from the options, checked.
    type Config;

    /// Builds the configuration from the options, which already passed their declarations.
    /// Both `validate` (at `burrow create`) and `open` (at start) call it, so an option
    /// `create` accepted cannot fail `open`'s checks. Refuse with
    /// [`Error::InvalidConfig`] (an [`OptError`](super::opts::OptError) converts to it).
    fn config(opts: &Options) -> Result<Self::Config, Error>;

    /// Opens files or connections for container `c`.
    fn open(c: &Container, cfg: Self::Config) -> Result<Self, Error>;

    /// Delivers a batch. An entry's `line` has no trailing newline; see
    /// [`line`](super::line) for chunks of long lines.
    fn write(&mut self, batch: Vec<Entry>) -> Result<(), Error>;

    /// Sends what the driver holds; nothing to do for a driver that writes through.
    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// The options checked against `D`'s declarations, then `D`'s configuration: what
/// `validate`, `open`, and a driver's own reader use.
pub fn config<D: LogDriver>(opts: &[Kv]) -> Result<D::Config, Error> {
    let opts = Options::parse(D::SPEC.name, D::SPEC.options, opts)?;
    D::config(&opts)
}

/// The WIT `validate`.
pub fn validate<D: LogDriver>(opts: &[Kv]) -> Result<(), Error> {
    config::<D>(opts).map(drop)
}

/// The WIT `describe`; `version` is the driver crate's.
pub fn describe<D: LogDriver>(version: &str) -> PluginInfo {
    D::SPEC.info(version)
}

/// A driver opened as the host opens it: options checked, configuration built, `open`
/// called.
pub fn open<D: LogDriver>(c: &Container, opts: &[Kv]) -> Result<D, Error> {
    D::open(c, config::<D>(opts)?)
}

/// The WIT `logger` resource around a driver: the host calls it through `&self`, so the
/// driver lives in a `RefCell` (calls never overlap).
pub struct LoggerOf<D>(RefCell<D>);

impl<D: LogDriver> GuestLogger for LoggerOf<D> {
    fn open(c: Container, opts: Vec<Kv>) -> Result<Logger, Error> {
        let d = open::<D>(&c, &opts)?;
        Ok(Logger::new(LoggerOf(RefCell::new(d))))
    }

    fn write(&self, batch: Vec<Entry>) -> Result<(), Error> {
        self.0.borrow_mut().write(batch)
    }

    fn flush(&self) -> Result<(), Error> {
        self.0.borrow_mut().flush()
    }
}

/// Exports a [`LogDriver`] as the component's `logging` interface: implements the WIT
/// `Guest` trait for it (`describe` from its [`Spec`] and the crate's version, `validate`
/// from its options and [`LogDriver::config`]) and, in the wasm build only, exports it.
///
/// `log_driver!(MyDriver)` gives a driver that cannot read its lines back: `can-read` is
/// false, the reader refuses with Docker's message, and the host keeps a local cache so
/// that `burrow logs` still works. `log_driver!(MyDriver, reader = MyReader)` names a
/// reader of your own (a [`GuestReader`](super::GuestReader)); `can-read` is then true.
#[macro_export]
macro_rules! log_driver {
    ($driver:ident) => {
        $crate::log_driver!(@guest $driver, $crate::log::NoReader, false);
    };
    ($driver:ident, reader = $reader:ty) => {
        $crate::log_driver!(@guest $driver, $reader, true);
    };
    (@guest $driver:ident, $reader:ty, $can_read:expr) => {
        impl $crate::log::Guest for $driver {
            type Logger = $crate::log::driver::LoggerOf<$driver>;
            type Reader = $reader;

            fn describe() -> $crate::log::PluginInfo {
                $crate::log::driver::describe::<$driver>(env!("CARGO_PKG_VERSION"))
            }

            fn validate(
                opts: ::std::vec::Vec<$crate::log::Kv>,
            ) -> ::std::result::Result<(), $crate::log::Error> {
                $crate::log::driver::validate::<$driver>(&opts)
            }

            fn can_read() -> bool {
                $can_read
            }
        }

        // Native builds (`cargo test`) carry no component exports: their names do not link.
        #[cfg(target_arch = "wasm32")]
        $crate::log::export_log_driver!($driver with_types_in $crate::log);
    };
}
