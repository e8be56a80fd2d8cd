//! pasta (from the passt package) as the network holder's way out, when burrow.toml says
//! `rootless_network_cmd = "pasta"`. pasta makes the holder's `tap0` as slirp4netns and
//! libslirp do (10.0.2.100/24 via 10.0.2.2, which pasta maps to the host's loopback), then
//! runs in the background. It does not end with the holder on its own, so `burrow __egress
//! --pasta` starts it and stays beside it, and ends it once the holder is gone.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::Ready;
use super::slirp::{MTU, TAP};

/// Why pasta gave the holder no way out.
#[derive(Debug, thiserror::Error)]
pub enum PastaError {
    #[error("cannot start {}", program.display())]
    Start {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pasta did not configure {TAP} of holder {holder} ({status})")]
    NotConfigured {
        holder: i32,
        status: std::process::ExitStatus,
    },
    #[error("pasta wrote no pid to {}", pid_file.display())]
    NoPid { pid_file: PathBuf },
}

/// `burrow __egress --pasta PATH`: starts pasta (`pasta_program`) on the holder with pid
/// `holder`, says `ready` once pasta configured `tap0`, then waits for `exit` to read
/// end-of-file (the holder is gone) and ends pasta. pasta's pid file is `pid_file`.
pub fn serve(
    holder: i32,
    exit: OwnedFd,
    ready: Ready,
    pasta_program: &Path,
    pid_file: &Path,
) -> i32 {
    let _ = std::fs::remove_file(pid_file);
    // Without -f pasta goes to the background once tap0 is configured: its exit is the sign.
    let status = std::process::Command::new(pasta_program)
        .args(["--config-net", "--quiet", "--ipv4-only", "--no-dhcp"])
        .args([
            "--address",
            "10.0.2.100",
            "--netmask",
            "24",
            "--gateway",
            "10.0.2.2",
        ])
        .args(["--ns-ifname", TAP, "--mtu", &MTU.to_string()])
        // Nothing is forwarded either way: published ports go through the holder.
        .args([
            "--tcp-ports",
            "none",
            "--udp-ports",
            "none",
            "--tcp-ns",
            "none",
            "--udp-ns",
            "none",
        ])
        .arg("--pid")
        .arg(pid_file)
        .arg(holder.to_string())
        .stdin(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(status) => {
            ready.failed(&PastaError::NotConfigured { holder, status });
            return 1;
        }
        Err(source) => {
            let program = pasta_program.to_path_buf();
            ready.failed(&PastaError::Start { program, source });
            return 1;
        }
    }
    let pid = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok());
    let Some(pid) = pid else {
        let pid_file = pid_file.to_path_buf();
        ready.failed(&PastaError::NoPid { pid_file });
        return 1;
    };
    tracing::info!(pid, "pasta carries {TAP}");
    ready.ready();
    // Blocks until the holder (the pipe's only writer) is gone.
    let _ = File::from(exit).read(&mut [0u8; 1]);
    // Debian's pasta runs on as passt.avx2 where the CPU has AVX2.
    let is_pasta = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|c| c.starts_with("pasta") || c.starts_with("passt"));
    if is_pasta {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = std::fs::remove_file(pid_file);
    0
}
