//! Where a command's time goes, across the processes it starts: with `BURROW_TIMING=FILE`
//! in the environment, every burrow process (the CLI, the monitor, the stdio relay, …)
//! appends one line per phase it passes to FILE — `NANOSECONDS PID ROLE PHASE` — and
//! `bench/timeline.sh` merges them into one timeline. Unset, a mark costs one load of a
//! cached flag.
//!
//! Phases are named `what:begin`/`what:end` or a single point; the role is the hidden
//! subcommand (`__monitor`, `__relay`, …) or `cli`.

use std::fs::File;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that names the file.
pub const VAR: &str = "BURROW_TIMING";

struct Sink {
    file: Mutex<File>,
    role: String,
}

fn sink() -> Option<&'static Sink> {
    static SINK: OnceLock<Option<Sink>> = OnceLock::new();
    SINK.get_or_init(|| {
        let path = std::env::var_os(VAR).filter(|p| !p.is_empty())?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()?;
        let role = std::env::args()
            .skip(1)
            .find(|a| !a.starts_with('-') && !a.contains('/'))
            .filter(|a| a.starts_with("__"))
            .unwrap_or_else(|| "cli".into());
        Some(Sink {
            file: Mutex::new(file),
            role,
        })
    })
    .as_ref()
}

/// Records that this process reached `phase`.
pub fn mark(phase: &str) {
    let Some(sink) = sink() else { return };
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let line = format!("{ns} {} {} {phase}\n", std::process::id(), sink.role);
    if let Ok(mut f) = sink.file.lock() {
        // One write per line: O_APPEND keeps lines of several processes whole.
        let _ = f.write_all(line.as_bytes());
    }
}
