//! A resolved profile as BPF programs, built with seccompiler.
//!
//! seccompiler gives one filter a single on-match action, and Docker's profile needs several
//! (allow, and ENOSYS for clone3). So a profile becomes several programs, installed in order:
//! - the allow-list: every syscall any rule names, under the same argument conditions, is
//!   allowed; everything else gets the profile's default action;
//! - one program per other action: the syscalls of that action, under their conditions, get
//!   it; everything else is allowed.
//!
//! The kernel runs every installed program and keeps the most severe result. A syscall
//! matching a rule passes the allow-list and gets its action from its own program; one
//! matching none gets the default from the allow-list and "allow" from the others. Since a
//! resolved syscall has exactly one action, no two programs disagree on anything else.
//!
//! Every program starts with the same gate, before seccompiler's own code: a foreign
//! architecture (i386 via `int 0x80` on x86_64, arm32 on aarch64) and, on x86_64, any number
//! with the x32 bit (`__X32_SYSCALL_BIT`, 0x40000000) fail with ENOSYS. The numbers the
//! rules compare are those of the native ABI only, so neither could be filtered correctly;
//! ENOSYS is what a kernel built without that ABI answers, and libc treats it as "not
//! here". (seccompiler's own architecture check kills the process; with the gate in front it
//! is never reached.)

use std::collections::BTreeSet;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, sock_filter,
};

use super::profile::{Action, ArgRule, CmpOp, Resolution, Resolved};
use super::{Arch, SeccompError};

/// `__X32_SYSCALL_BIT` from the kernel's asm/unistd.h.
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Classic BPF opcodes (linux/bpf_common.h) and the offsets of `struct seccomp_data`.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const RET_ERRNO: u32 = 0x0005_0000;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The prologue every program starts with (see the module documentation).
pub(crate) fn gate(arch: Arch) -> Vec<sock_filter> {
    let enosys = RET_ERRNO | libc::ENOSYS as u32;
    let mut gate = vec![
        stmt(LD_W_ABS, DATA_ARCH),
        jump(JEQ_K, arch.audit(), 1, 0),
        stmt(RET_K, enosys),
    ];
    if arch == Arch::X86_64 {
        gate.extend([
            stmt(LD_W_ABS, DATA_NR),
            jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
            stmt(RET_K, enosys),
        ]);
    }
    gate
}

fn seccomp_action(action: Action) -> SeccompAction {
    match action {
        Action::Allow => SeccompAction::Allow,
        Action::Errno(e) => SeccompAction::Errno(e),
        Action::KillThread => SeccompAction::KillThread,
        Action::KillProcess => SeccompAction::KillProcess,
        Action::Trap => SeccompAction::Trap,
        Action::Trace(t) => SeccompAction::Trace(t),
        Action::Log => SeccompAction::Log,
    }
}

/// libseccomp compares all 64 bits of an argument; so do we.
fn condition(arg: &ArgRule) -> Result<SeccompCondition, SeccompError> {
    let (op, value) = match arg.op {
        CmpOp::Ne => (SeccompCmpOp::Ne, arg.value),
        CmpOp::Lt => (SeccompCmpOp::Lt, arg.value),
        CmpOp::Le => (SeccompCmpOp::Le, arg.value),
        CmpOp::Eq => (SeccompCmpOp::Eq, arg.value),
        CmpOp::Ge => (SeccompCmpOp::Ge, arg.value),
        CmpOp::Gt => (SeccompCmpOp::Gt, arg.value),
        CmpOp::MaskedEq => (SeccompCmpOp::MaskedEq(arg.value), arg.value_two),
    };
    SeccompCondition::new(arg.index, SeccompCmpArgLen::Qword, op, value)
        .map_err(|source| SeccompError::Build { source })
}

fn chain(resolved: &Resolved) -> Result<Vec<SeccompRule>, SeccompError> {
    resolved
        .any_of
        .iter()
        .map(|all| {
            let conditions = all.iter().map(condition).collect::<Result<Vec<_>, _>>()?;
            SeccompRule::new(conditions).map_err(|source| SeccompError::Build { source })
        })
        .collect()
}

/// One program: `match_action` for the syscalls `pick` keeps (under their conditions),
/// `mismatch` for everything else; the gate in front.
fn program(
    res: &Resolution,
    arch: Arch,
    pick: impl Fn(&Resolved) -> bool,
    mismatch: Action,
    match_action: Action,
) -> Result<BpfProgram, SeccompError> {
    let mut rules = std::collections::BTreeMap::new();
    for (nr, resolved) in res.rules.iter().filter(|(_, r)| pick(r)) {
        rules.insert(i64::from(*nr), chain(resolved)?);
    }
    let filter = SeccompFilter::new(
        rules,
        seccomp_action(mismatch),
        seccomp_action(match_action),
        arch.target(),
    )
    .map_err(|source| SeccompError::Build { source })?;
    let body: BpfProgram = filter
        .try_into()
        .map_err(|source| SeccompError::Build { source })?;
    let mut out = gate(arch);
    out.extend(body);
    Ok(out)
}

/// The programs for `res`, in the order to install them (see the module documentation).
pub(crate) fn programs(res: &Resolution, arch: Arch) -> Result<Vec<BpfProgram>, SeccompError> {
    let mut out = Vec::new();
    if res.default == Action::Allow {
        let mut allow = gate(arch);
        allow.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
        out.push(allow);
    } else {
        out.push(program(res, arch, |_| true, res.default, Action::Allow)?);
    }
    let others: BTreeSet<Action> = res
        .rules
        .values()
        .map(|r| r.action)
        .filter(|a| *a != Action::Allow)
        .collect();
    for action in others {
        out.push(program(
            res,
            arch,
            |r| r.action == action,
            Action::Allow,
            action,
        )?);
    }
    Ok(out)
}
