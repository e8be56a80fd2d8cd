//! `lines`: an example burrow log driver. Copy this crate to start your own.
//!
//! Each entry becomes one line `<unix-seconds> <stream> <line>` in a file in the container's
//! log directory (`/logs`, which the host preopens because `needs` asks for it).
//! `cargo test` runs the tests below natively, against the SDK's fake host.

use std::fs::{File, OpenOptions};
use std::io::Write;

use burrow_plugin_sdk::log::driver::{LogDriver, Needs, Spec};
use burrow_plugin_sdk::log::opts::{Opt, OptError, Options};
use burrow_plugin_sdk::log::{Container, Entry, Error, host, line};

/// One container's log file. The host opens one per container and drops it at the end.
pub struct Lines {
    file: File,
    buf: Vec<u8>,
}

impl LogDriver for Lines {
    const SPEC: Spec = Spec {
        name: "lines", // what users pass to --log-driver
        description: "writes `<unix-seconds> <stream> <line>` lines to a file",
        // Ask only for what you use: the user grants it at `burrow plugin install`.
        needs: Needs::LOG_DIR,
        // Any other --log-opt is refused with Docker's "unknown log opt" message.
        options: &[Opt::text("lines-file")],
    };

    /// The file name: `lines-file`, else `<container-id>.log`.
    type Config = Option<String>;

    /// Runs at `burrow create` (to refuse bad options early) and again at start.
    fn config(opts: &Options) -> Result<Option<String>, Error> {
        let name = opts.text("lines-file");
        if let Some(n) = name.filter(|n| n.is_empty() || n.contains('/') || n.starts_with('.')) {
            let msg = format!("invalid lines-file '{n}': give a plain file name");
            return Err(OptError::invalid("lines-file", msg).into());
        }
        Ok(name.map(str::to_string))
    }

    fn open(c: &Container, name: Option<String>) -> Result<Self, Error> {
        let path = host::log_dir().join(name.unwrap_or_else(|| format!("{}.log", c.id)));
        let file = OpenOptions::new().create(true).append(true).open(&path);
        let file =
            file.map_err(|e| Error::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        Ok(Lines {
            file,
            buf: Vec::new(),
        })
    }

    /// Formats the whole batch, then writes it with one system call.
    fn write(&mut self, batch: Vec<Entry>) -> Result<(), Error> {
        self.buf.clear();
        for e in &batch {
            // A line over 16 KiB comes in chunks: only its first chunk gets the prefix.
            if line::starts_line(e) {
                let stream = line::stream_name(e.source);
                write!(self.buf, "{} {stream} ", e.time_ns / 1_000_000_000).ok();
            }
            line::push_line(e, &mut self.buf); // the bytes, and '\n' if the line ends here
        }
        let res = self.file.write_all(&self.buf);
        res.map_err(|e| Error::Internal(format!("cannot write the log file: {e}")))
    }
}

// Exports the driver (in the wasm build); `describe`, `validate` and `can-read` come from SPEC.
burrow_plugin_sdk::log_driver!(Lines);

#[cfg(test)]
mod tests;
