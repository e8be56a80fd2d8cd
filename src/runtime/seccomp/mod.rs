//! The seccomp filter of every container process: an allow-list whose source of truth is
//! Docker's default profile (`default.json` beside this file, from moby, Apache-2.0; README.md
//! here says where exactly), resolved for the
//! container's capabilities, the architecture and the running kernel, and compiled into BPF
//! with seccompiler.
//!
//! What a container gets with Docker's default capabilities (the profile decides, not this
//! code): ~370 syscalls are allowed, some only with certain arguments (`personality` with 0,
//! 8, 0x20000, 0x20008 or 0xffffffff; `clone` without any CLONE_NEW* flag; `socket` for any
//! family but AF_ALG and AF_VSOCK); everything else, `io_uring_*`, `mount`, `unshare`,
//! `keyctl`, `bpf` and any syscall newer than the profile among them, fails with the profile's
//! `defaultErrnoRet` (EPERM). `clone3` fails with ENOSYS so that libc falls back to `clone`,
//! whose flags a filter can read. Each capability a container is given widens this as in
//! Docker: CAP_SYS_ADMIN allows `mount`, `unshare`, `setns`, namespace flags to `clone`, and
//! `clone3`; CAP_SYS_PTRACE `kcmp` and `pidfd_getfd`; CAP_SYS_TIME `settimeofday`...
//!
//! Where burrow differs from Docker, on purpose:
//! - Only the native ABI is filtered. Docker's `archMap` also lets i386 and x32 syscalls
//!   through on x86_64 (filtered by their own numbers); burrow has no tables for them and
//!   fails them with ENOSYS (`bpf.rs` says how).
//!   `architectures` and `archMap` are therefore not read.
//! - `minKernel` is compared with the running kernel, as moby does (only `ptrace` and
//!   `process_vm_*` use it: allowed from 4.8, when seccomp began to check after ptrace).
//! - `flags` is ignored (it only relaxes: SPEC_ALLOW, LOG); `listenerPath` and
//!   SCMP_ACT_NOTIFY are refused with an error naming them.
//!
//! Cost per container start (release build, shared 2-core machine): the filter is installed
//! between fork and execve. Parsing, resolving and compiling the profile there takes ~0.1-0.25
//! ms (the JSON parse alone ~0.1-0.2 ms; ~1.3 ms in a debug build), so build.rs precomputes
//! the programs for Docker's default capabilities (`precompute.rs`: ~1-15 µs to pick them up);
//! other capability sets are compiled at start. Attaching them costs the kernel ~0.1 ms
//! (`bpf.rs`). The test `compile_time_is_small` prints the figures of the build it runs in.

mod bpf;
mod model;
mod precompute;
mod profile;

#[cfg(test)]
mod bpf_interpreter;
#[cfg(all(test, target_arch = "x86_64"))]
mod probe_tests;
#[cfg(test)]
mod tests;

use seccompiler::BpfProgram;

use super::RuntimeError;
pub(crate) use model::{Arch, KernelVersion, SeccompError};
use precompute::Precomputed;
use profile::{Profile, Target};

/// Docker's default profile, kept as data.
const DEFAULT_PROFILE: &str = include_str!("default.json");

// PRECOMPUTED: the default profile's programs for Docker's capabilities (build.rs).
include!(concat!(env!("OUT_DIR"), "/seccomp_default.rs"));

impl From<SeccompError> for RuntimeError {
    /// The whole chain in one line: this error crosses the pipe from the container process
    /// as text.
    fn from(e: SeccompError) -> Self {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        RuntimeError::Seccomp { reason }
    }
}

impl KernelVersion {
    pub(crate) fn running() -> Result<Self, SeccompError> {
        let uts =
            nix::sys::utsname::uname().map_err(|e| SeccompError::Uname { source: e.into() })?;
        uts.release().to_string_lossy().parse()
    }
}

/// Docker's default profile resolved for `caps` (the bounding set) on `arch` and `kernel`,
/// as the BPF programs to install in order.
pub(crate) fn compile(
    caps: &[caps::Capability],
    arch: Arch,
    kernel: KernelVersion,
) -> Result<Vec<BpfProgram>, SeccompError> {
    compile_profile(DEFAULT_PROFILE, caps, arch, kernel)
}

pub(crate) fn compile_profile(
    json: &str,
    caps: &[caps::Capability],
    arch: Arch,
    kernel: KernelVersion,
) -> Result<Vec<BpfProgram>, SeccompError> {
    let profile = Profile::parse(json)?;
    let caps: Vec<String> = caps.iter().map(ToString::to_string).collect();
    let resolution = profile.resolve(&Target {
        arch,
        caps: &caps,
        kernel,
    })?;
    bpf::programs(&resolution, arch)
}

/// Docker's default filter for `caps` on `arch` and `kernel`: the programs build.rs computed
/// when they fit (see `precompute.rs`), else compiled now.
pub(crate) fn default_programs(
    caps: &[caps::Capability],
    arch: Arch,
    kernel: KernelVersion,
) -> Result<Vec<BpfProgram>, SeccompError> {
    let names: Vec<String> = caps.iter().map(ToString::to_string).collect();
    if PRECOMPUTED.fits(arch, &names, kernel) {
        return Ok(PRECOMPUTED.programs());
    }
    compile(caps, arch, kernel)
}

/// Installs Docker's default filter for a process whose bounding set is `caps` on the calling
/// thread (no_new_privs is set first if it is not yet).
pub(crate) fn install(caps: &[caps::Capability]) -> Result<(), RuntimeError> {
    let programs = default_programs(caps, Arch::native()?, KernelVersion::running()?)?;
    apply(&programs)?;
    Ok(())
}

/// Installs `programs` in order.
pub(crate) fn apply(programs: &[BpfProgram]) -> Result<(), SeccompError> {
    for program in programs {
        seccompiler::apply_filter(program).map_err(|source| SeccompError::Install { source })?;
    }
    Ok(())
}
