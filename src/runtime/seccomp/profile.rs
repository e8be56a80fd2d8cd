//! Docker's seccomp profile format (the JSON of `profiles/seccomp/default.json` and of
//! `--security-opt seccomp=FILE`), and its resolution for one container: which rules apply
//! given the architecture, the capability set and the kernel version, with syscall names
//! turned into numbers.
//!
//! The selection follows moby's `setupSeccomp` (profiles/seccomp/seccomp_linux.go):
//! - `excludes.arches` drops a rule on a listed architecture, `includes.arches` keeps it only
//!   on a listed one (Go's names: `amd64`, `arm64`, `riscv64`);
//! - `excludes.caps` drops a rule when the container has *any* listed capability,
//!   `includes.caps` keeps it only when the container has *all* of them (Docker tests the
//!   bounding set);
//! - `includes.minKernel` keeps a rule only on a kernel at least that version,
//!   `excludes.minKernel` drops it there (major.minor, as moby compares them).
//!
//! Syscall names unknown on the architecture (`umount`, `stime`, the 32-bit `*64` variants on
//! x86_64) are skipped, as runc does. Several rules naming one syscall with one action are
//! ORed; a rule without arguments makes the syscall unconditional. A syscall given two
//! different actions by the rules that apply is refused: libseccomp's precedence between them
//! is not something a reader of the profile can see, and Docker's own profile never does it.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use serde::Deserialize;

use super::{Arch, KernelVersion, SeccompError};

/// A seccomp profile as Docker writes it. Fields burrow does not act on are listed in the
/// module's parent documentation.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Profile {
    pub default_action: ActionName,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// A user-notification socket (`SCMP_ACT_NOTIFY`); not supported.
    #[serde(default)]
    pub listener_path: Option<String>,
    #[serde(default)]
    pub syscalls: Vec<SyscallRule>,
}

/// libseccomp's action names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum ActionName {
    #[serde(rename = "SCMP_ACT_KILL")]
    Kill,
    #[serde(rename = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

/// One entry of `syscalls`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SyscallRule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub names: Vec<String>,
    pub action: ActionName,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<ArgRule>,
    #[serde(default)]
    pub includes: Option<Selector>,
    #[serde(default)]
    pub excludes: Option<Selector>,
}

/// `includes` / `excludes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Selector {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// One argument condition: `args[index] OP value` (for MASKED_EQ, `args[index] & value ==
/// value_two`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ArgRule {
    pub index: u8,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: CmpOp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum CmpOp {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

/// What the filter does with a syscall: the kernel's return values, errno included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Action {
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Trap,
    Trace(u32),
    Log,
}

/// The rules of one syscall after resolution: one action, taken when any of `any_of` holds
/// (each an AND of conditions); an empty `any_of` means always.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub action: Action,
    pub any_of: Vec<Vec<ArgRule>>,
}

/// A profile resolved for one container: the default action and the rules by syscall number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolution {
    pub default: Action,
    pub rules: BTreeMap<u32, Resolved>,
}

/// The container a profile is resolved for.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    pub arch: Arch,
    /// Capability names as Docker writes them (`CAP_SYS_ADMIN`): the bounding set.
    pub caps: &'a [String],
    pub kernel: KernelVersion,
}

impl Profile {
    pub(crate) fn parse(json: &str) -> Result<Self, SeccompError> {
        serde_json::from_str(json).map_err(|source| SeccompError::Parse { source })
    }

    /// The rules that apply to `target`, by syscall number.
    pub(crate) fn resolve(&self, target: &Target<'_>) -> Result<Resolution, SeccompError> {
        if let Some(path) = self.listener_path.as_deref().filter(|p| !p.is_empty()) {
            return Err(SeccompError::Unsupported {
                what: format!("listenerPath {path} (user notification)"),
            });
        }
        let default = action(self.default_action, self.default_errno_ret, "defaultAction")?;
        let mut rules: BTreeMap<u32, Resolved> = BTreeMap::new();
        for rule in &self.syscalls {
            if !applies(rule, target)? {
                continue;
            }
            let names: Vec<&str> = match (&rule.name, rule.names.is_empty()) {
                (Some(_), false) => {
                    return Err(SeccompError::NameAndNames {
                        names: rule.names.join(","),
                    });
                }
                (Some(name), true) => vec![name.as_str()],
                (None, _) => rule.names.iter().map(String::as_str).collect(),
            };
            let first = names.first().copied().unwrap_or("");
            let act = action(rule.action, rule.errno_ret, first)?;
            if let Some(arg) = rule.args.iter().find(|a| a.index > 5) {
                return Err(SeccompError::ArgIndex {
                    syscall: first.to_string(),
                    index: arg.index,
                });
            }
            for name in names {
                let Some(nr) = target.arch.syscall_nr(name) else {
                    continue;
                };
                merge(&mut rules, nr, name, act, &rule.args)?;
            }
        }
        Ok(Resolution { default, rules })
    }
}

/// What a profile's resolution depends on besides the architecture: the capabilities its
/// rules name and the kernel versions they compare with. Two containers that agree on which
/// of these capabilities they have and which of these versions their kernel reaches get the
/// same filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))] // used by build.rs
pub(crate) struct Dependence {
    pub caps: BTreeSet<String>,
    pub kernels: BTreeSet<KernelVersion>,
}

impl Profile {
    #[cfg_attr(not(test), allow(dead_code))] // used by build.rs
    pub(crate) fn dependence(&self) -> Result<Dependence, SeccompError> {
        let mut dep = Dependence::default();
        for sel in self
            .syscalls
            .iter()
            .flat_map(|r| r.includes.iter().chain(r.excludes.iter()))
        {
            dep.caps.extend(sel.caps.iter().cloned());
            if let Some(min) = &sel.min_kernel {
                dep.kernels.insert(KernelVersion::from_str(min)?);
            }
        }
        Ok(dep)
    }
}

/// Adds one rule for syscall `nr`, ORed with those already there.
fn merge(
    rules: &mut BTreeMap<u32, Resolved>,
    nr: u32,
    name: &str,
    act: Action,
    args: &[ArgRule],
) -> Result<(), SeccompError> {
    match rules.get_mut(&nr) {
        None => {
            let any_of = if args.is_empty() {
                Vec::new()
            } else {
                vec![args.to_vec()]
            };
            rules.insert(
                nr,
                Resolved {
                    action: act,
                    any_of,
                },
            );
        }
        Some(existing) if existing.action != act => {
            return Err(SeccompError::ConflictingActions {
                syscall: name.to_string(),
                first: format!("{:?}", existing.action),
                second: format!("{act:?}"),
            });
        }
        // Already unconditional: nothing widens it.
        Some(existing) if existing.any_of.is_empty() => {}
        Some(existing) => {
            if args.is_empty() {
                existing.any_of.clear();
            } else if !existing.any_of.iter().any(|c| c == args) {
                existing.any_of.push(args.to_vec());
            }
        }
    }
    Ok(())
}

fn action(name: ActionName, errno: Option<u32>, what: &str) -> Result<Action, SeccompError> {
    Ok(match name {
        ActionName::Allow => Action::Allow,
        // runc's default when a profile names no errno.
        ActionName::Errno => Action::Errno(errno.unwrap_or(libc::EPERM as u32)),
        ActionName::Kill | ActionName::KillThread => Action::KillThread,
        ActionName::KillProcess => Action::KillProcess,
        ActionName::Trap => Action::Trap,
        ActionName::Trace => Action::Trace(errno.unwrap_or(libc::EPERM as u32)),
        ActionName::Log => Action::Log,
        ActionName::Notify => {
            return Err(SeccompError::Unsupported {
                what: format!("SCMP_ACT_NOTIFY for {what}"),
            });
        }
    })
}

/// moby's `includes`/`excludes` test for one rule.
fn applies(rule: &SyscallRule, target: &Target<'_>) -> Result<bool, SeccompError> {
    let arch = target.arch.docker_name();
    let has = |cap: &String| target.caps.iter().any(|c| c == cap);
    if let Some(ex) = &rule.excludes {
        if ex.arches.iter().any(|a| a == arch) || ex.caps.iter().any(has) {
            return Ok(false);
        }
        if let Some(min) = &ex.min_kernel {
            if target.kernel >= KernelVersion::from_str(min)? {
                return Ok(false);
            }
        }
    }
    if let Some(inc) = &rule.includes {
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch) {
            return Ok(false);
        }
        if !inc.caps.iter().all(has) {
            return Ok(false);
        }
        if let Some(min) = &inc.min_kernel {
            if target.kernel < KernelVersion::from_str(min)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
