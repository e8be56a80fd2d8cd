//! The seccomp filter of every container process: an allow-list whose source of truth is
//! Docker's default profile (`default.json` beside this file, moby's
//! `profiles/seccomp/default.json`, Apache-2.0; see README.md here), resolved for the
//! container's capabilities, the architecture and the running kernel, and compiled into BPF
//! with seccompiler.
//!
//! What a container gets with Docker's default capabilities (the profile decides, not this
//! code): ~370 syscalls are allowed, some only with certain arguments (`personality` with 0,
//! 8, 0x20000, 0x20008 or 0xffffffff; `clone` without any CLONE_NEW* flag; `socket` for any
//! family but AF_ALG and AF_VSOCK); everything else, `io_uring_*`, `mount`, `unshare`, `keyctl`, `bpf`
//! and any syscall newer than the profile among them, fails with the profile's
//! `defaultErrnoRet` (EPERM). `clone3` fails with ENOSYS so that libc falls back to `clone`,
//! whose flags a filter can read. Each capability a container is given widens this as in
//! Docker: CAP_SYS_ADMIN allows `mount`, `unshare`, `setns`, namespace flags to `clone`, and
//! `clone3`; CAP_SYS_PTRACE `ptrace`...
//!
//! Where burrow differs from Docker, on purpose:
//! - Only the native ABI is filtered. Docker's `archMap` also lets i386 and x32 syscalls
//!   through on x86_64 (filtered by their own numbers); burrow has no tables for them and
//!   fails them with ENOSYS (`bpf.rs` says how).
//! - `minKernel` is compared with the running kernel, as moby does; `flags` is ignored (it only
//!   relaxes: SPEC_ALLOW, LOG); `listenerPath` and SCMP_ACT_NOTIFY are refused.
//!
//! Cost: resolving and compiling happens in the container process between fork and execve;
//! `compile` is measured by the test `compile_time_is_small` (figures in README.md here).

mod bpf;
mod profile;

#[cfg(all(test, target_arch = "x86_64"))]
mod probe_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use seccompiler::{BpfProgram, TargetArch};

use super::RuntimeError;
use profile::{Profile, Target};

/// Docker's default profile, kept as data.
const DEFAULT_PROFILE: &str = include_str!("default.json");

#[derive(Debug, thiserror::Error)]
pub(crate) enum SeccompError {
    #[error("cannot parse the seccomp profile")]
    Parse {
        #[source]
        source: serde_json::Error,
    },
    #[error("a seccomp rule has both name and names ({names}); keep one of them")]
    NameAndNames { names: String },
    #[error(
        "the seccomp rule for {syscall} tests argument {index}; syscalls have arguments 0 to 5"
    )]
    ArgIndex { syscall: String, index: u8 },
    #[error(
        "the seccomp profile gives {syscall} two actions ({first} and {second}); keep one action per syscall"
    )]
    ConflictingActions {
        syscall: String,
        first: String,
        second: String,
    },
    #[error("the seccomp profile uses {what}, which burrow does not support; remove it")]
    Unsupported { what: String },
    #[error("kernel version {version:?} is not of the form major.minor")]
    KernelVersion { version: String },
    #[error("cannot read the kernel version (uname)")]
    Uname {
        #[source]
        source: nix::Error,
    },
    #[error("no seccomp filter for architecture {arch}; burrow filters x86_64, aarch64 and riscv64")]
    UnknownArch { arch: String },
    #[error("cannot build the seccomp filter")]
    Build {
        #[source]
        source: seccompiler::BackendError,
    },
    #[error("cannot install the seccomp filter")]
    Install {
        #[source]
        source: seccompiler::Error,
    },
}

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

/// The architectures burrow filters (seccompiler's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arch {
    X86_64,
    Aarch64,
    Riscv64,
}

impl Arch {
    pub(crate) fn native() -> Result<Self, SeccompError> {
        match std::env::consts::ARCH {
            "x86_64" => Ok(Self::X86_64),
            "aarch64" => Ok(Self::Aarch64),
            "riscv64" => Ok(Self::Riscv64),
            other => Err(SeccompError::UnknownArch {
                arch: other.to_string(),
            }),
        }
    }

    /// The name Docker's profile uses in `arches` (Go's GOARCH, as libseccomp spells it).
    fn docker_name(self) -> &'static str {
        match self {
            Self::X86_64 => "amd64",
            Self::Aarch64 => "arm64",
            Self::Riscv64 => "riscv64",
        }
    }

    /// AUDIT_ARCH_* (linux/audit.h): what `seccomp_data.arch` holds.
    fn audit(self) -> u32 {
        match self {
            Self::X86_64 => 0xc000_003e,
            Self::Aarch64 => 0xc000_00b7,
            Self::Riscv64 => 0xc000_00f3,
        }
    }

    fn target(self) -> TargetArch {
        match self {
            Self::X86_64 => TargetArch::x86_64,
            Self::Aarch64 => TargetArch::aarch64,
            Self::Riscv64 => TargetArch::riscv64,
        }
    }

    /// The syscall's number in this architecture's native ABI; None where it has no such call.
    fn syscall_nr(self, name: &str) -> Option<u32> {
        let id = match self {
            Self::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok()?.id(),
            Self::Aarch64 => syscalls::aarch64::Sysno::from_str(name).ok()?.id(),
            Self::Riscv64 => syscalls::riscv64::Sysno::from_str(name).ok()?.id(),
        };
        u32::try_from(id).ok()
    }
}

/// A kernel's major.minor, compared as moby's `kernelGreaterEqualThan` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KernelVersion {
    pub major: u32,
    pub minor: u32,
}

impl FromStr for KernelVersion {
    type Err = SeccompError;

    /// `4.8`, `6.18.44-fc`, `3.12-1-amd64`: the first two numbers.
    fn from_str(s: &str) -> Result<Self, SeccompError> {
        let bad = || SeccompError::KernelVersion {
            version: s.to_string(),
        };
        let (major, rest) = s.split_once('.').ok_or_else(bad)?;
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        Ok(Self {
            major: major.parse().map_err(|_| bad())?,
            minor: rest[..digits].parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl KernelVersion {
    pub(crate) fn running() -> Result<Self, SeccompError> {
        let uts = nix::sys::utsname::uname().map_err(|source| SeccompError::Uname { source })?;
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

/// Installs Docker's default filter for a process whose bounding set is `caps` on the calling
/// thread (no_new_privs is set first if it is not yet).
pub(crate) fn install(caps: &[caps::Capability]) -> Result<(), RuntimeError> {
    let programs = compile(caps, Arch::native()?, KernelVersion::running()?)?;
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
