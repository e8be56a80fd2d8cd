//! A seccomp filter equivalent to Docker's default profile for a container with Docker's
//! default capabilities, written as a deny-list: everything is allowed except the calls the
//! default profile leaves out, which fail with EPERM.
//!
//! Denied outright (Docker allows them only with a capability the container lacks, or never):
//! - kernel and modules: kexec_load kexec_file_load init_module finit_module delete_module
//!   reboot syslog acct swapon swapoff
//! - clocks: settimeofday clock_settime clock_adjtime adjtimex
//! - keyring: add_key keyctl request_key
//! - tracing and introspection: bpf perf_event_open userfaultfd kcmp lookup_dcookie
//!   process_vm_readv process_vm_writev (ptrace itself stays allowed: kernels after 4.8
//!   enforce seccomp after ptrace)
//! - legacy: uselib ustat sysfs _sysctl nfsservctl iopl ioperm vhangup (vm86 and vm86old are
//!   i386-only and do not exist on x86_64)
//! - file handles: open_by_handle_at name_to_handle_at
//! - namespaces and mounts: setns unshare mount umount2 pivot_root mount_setattr move_mount
//!   open_tree fsopen fsconfig fsmount fspick quotactl quotactl_fd
//! - NUMA: get_mempolicy set_mempolicy mbind move_pages
//!
//! Denied by argument:
//! - personality, unless its argument is 0, 8 (PER_LINUX32), 0x20000 (UNAME26), 0x20008 or
//!   0xffffffff (query);
//! - clone with any CLONE_NEW* flag.
//!
//! clone3 gets ENOSYS (a second filter) so that libc falls back to clone, whose flags a
//! seccomp filter can inspect; Docker does the same.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::RuntimeError;

#[cfg(target_arch = "x86_64")]
const ARCH_ONLY: &[i64] = &[
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_uselib,
    libc::SYS_ustat,
    libc::SYS_sysfs,
    libc::SYS__sysctl,
    libc::SYS_nfsservctl,
];
#[cfg(not(target_arch = "x86_64"))]
const ARCH_ONLY: &[i64] = &[];

const DENIED: &[i64] = &[
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_add_key,
    libc::SYS_keyctl,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_kcmp,
    libc::SYS_lookup_dcookie,
    libc::SYS_quotactl,
    libc::SYS_quotactl_fd,
    libc::SYS_reboot,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_mount_setattr,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_get_mempolicy,
    libc::SYS_set_mempolicy,
    libc::SYS_mbind,
    libc::SYS_move_pages,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_vhangup,
];

const PERSONALITY_ALLOWED: &[u64] = &[0, 8, 0x20000, 0x20008, 0xffff_ffff];

const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

fn err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Seccomp {
        reason: e.to_string(),
    }
}

fn cond(
    op: SeccompCmpOp,
    len: SeccompCmpArgLen,
    value: u64,
) -> Result<SeccompCondition, RuntimeError> {
    SeccompCondition::new(0, len, op, value).map_err(err)
}

/// The two programs to install, in order: the EPERM deny-list, then clone3 → ENOSYS.
pub(crate) fn programs(arch: TargetArch) -> Result<Vec<BpfProgram>, RuntimeError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in DENIED.iter().chain(ARCH_ONLY) {
        rules.insert(*nr, Vec::new());
    }
    // One rule whose conditions all hold (AND) when the persona is none of the allowed ones.
    let not_allowed = PERSONALITY_ALLOWED
        .iter()
        .map(|v| cond(SeccompCmpOp::Ne, SeccompCmpArgLen::Dword, *v))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(
        libc::SYS_personality,
        vec![SeccompRule::new(not_allowed).map_err(err)?],
    );
    // Rules are ORed: one per namespace flag.
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|f| {
            SeccompRule::new(vec![cond(
                SeccompCmpOp::MaskedEq(*f),
                SeccompCmpArgLen::Qword,
                *f,
            )?])
            .map_err(err)
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(err)?;
    Ok(vec![
        deny.try_into().map_err(err)?,
        clone3.try_into().map_err(err)?,
    ])
}

/// Installs the filters on the calling thread (sets no_new_privs if not yet set).
pub(crate) fn install() -> Result<(), RuntimeError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(err)?;
    for program in programs(arch)? {
        seccompiler::apply_filter(&program).map_err(err)?;
    }
    Ok(())
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// BPF `ret` instructions (class RET, source K) and their constants.
    fn returns(p: &BpfProgram) -> Vec<u32> {
        p.iter().filter(|i| i.code == 0x06).map(|i| i.k).collect()
    }

    /// `jeq #K` constants: the syscall numbers and argument values the program compares.
    fn compared(p: &BpfProgram) -> Vec<u32> {
        p.iter().filter(|i| i.code == 0x15).map(|i| i.k).collect()
    }

    #[test]
    fn compiles_for_x86_64_with_the_denied_calls() {
        let progs = programs(TargetArch::x86_64).unwrap();
        assert_eq!(progs.len(), 2);
        let (deny, clone3) = (&progs[0], &progs[1]);
        let k = compared(deny);
        for nr in [
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_keyctl,
            libc::SYS_clone,
            libc::SYS_personality,
        ] {
            assert!(k.contains(&(nr as u32)), "syscall {nr} not in the filter");
        }
        assert!(!k.contains(&(libc::SYS_ptrace as u32)));
        assert!(k.contains(&0x20008), "personality values compared");
        let errno_eperm = 0x0005_0000 | libc::EPERM as u32;
        let errno_enosys = 0x0005_0000 | libc::ENOSYS as u32;
        assert!(returns(deny).contains(&errno_eperm));
        assert!(returns(deny).contains(&0x7fff_0000), "allow by default");
        assert!(returns(clone3).contains(&errno_enosys));
        assert!(compared(clone3).contains(&(libc::SYS_clone3 as u32)));
    }
}
