//! The vocabulary of the seccomp module: architectures, kernel versions, errors. Plain data
//! with no tie to the rest of burrow: build.rs compiles this file, `profile.rs`, `bpf.rs` and
//! `precompute.rs` too, to compute the default filter at build time.

use std::fmt;
use std::str::FromStr;

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
        source: std::io::Error,
    },
    #[error(
        "no seccomp filter for architecture {arch}; burrow filters x86_64, aarch64 and riscv64"
    )]
    UnknownArch { arch: String },
    #[error(
        "the seccomp filter would have {len} instructions, more than the kernel's 4096; shorten the profile"
    )]
    TooLarge { len: usize },
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
    pub(crate) fn docker_name(self) -> &'static str {
        match self {
            Self::X86_64 => "amd64",
            Self::Aarch64 => "arm64",
            Self::Riscv64 => "riscv64",
        }
    }

    /// AUDIT_ARCH_* (linux/audit.h): what `seccomp_data.arch` holds.
    pub(crate) fn audit(self) -> u32 {
        match self {
            Self::X86_64 => 0xc000_003e,
            Self::Aarch64 => 0xc000_00b7,
            Self::Riscv64 => 0xc000_00f3,
        }
    }

    /// The syscall's number in this architecture's native ABI; None where it has no such call.
    pub(crate) fn syscall_nr(self, name: &str) -> Option<u32> {
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
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
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
