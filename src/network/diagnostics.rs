//! Where the network's own processes (the holder, `burrow __egress`) write their
//! diagnostics: through `tracing`, one line per event and no colours, to a file beside the
//! holder's state (`RUN/network/holder.log`, `RUN/network/egress.log`), as the monitor does
//! with `monitor.log`. `BURROW_LOG` sets the filter (inherited from the command that started
//! them); without it, `info` and above are kept: these processes log little, and rarely.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Sends this process's tracing to `writer` (once; later calls change nothing).
pub(super) fn init<W>(writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_env("BURROW_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
