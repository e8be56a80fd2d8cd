//! The profile's resolution as data, and the compiled programs run through a small classic-BPF
//! interpreter (`bpf_interpreter.rs`), so that foreign architectures and x32 numbers are
//! tested whatever this kernel supports.

use caps::Capability;

use super::bpf::X32_SYSCALL_BIT;
use super::bpf_interpreter::{Call, verdict};
use super::profile::{Action, ArgRule, CmpOp, Profile, Target};
use super::*;

fn docker_caps() -> &'static [Capability] {
    crate::runtime::privileges::DOCKER_CAPS
}

const KERNEL: KernelVersion = KernelVersion { major: 6, minor: 1 };
const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;

fn names(caps: &[Capability]) -> Vec<String> {
    caps.iter().map(ToString::to_string).collect()
}

fn with(extra: Capability) -> Vec<Capability> {
    let mut caps = docker_caps().to_vec();
    caps.push(extra);
    caps
}

fn resolve(caps: &[Capability], arch: Arch, kernel: KernelVersion) -> profile::Resolution {
    let caps = names(caps);
    Profile::parse(DEFAULT_PROFILE)
        .unwrap()
        .resolve(&Target {
            arch,
            caps: &caps,
            kernel,
        })
        .unwrap()
}

fn nr(name: &str) -> u32 {
    Arch::X86_64.syscall_nr(name).unwrap()
}

const ALLOW: u32 = 0x7fff_0000;
fn errno(e: u32) -> u32 {
    0x0005_0000 | e
}

fn docker_programs() -> Vec<BpfProgram> {
    compile(docker_caps(), Arch::X86_64, KERNEL).unwrap()
}

// --- resolution --------------------------------------------------------------------------

#[test]
fn default_profile_is_an_allow_list_failing_with_eperm() {
    let res = resolve(docker_caps(), Arch::X86_64, KERNEL);
    assert_eq!(res.default, Action::Errno(EPERM));
    assert!(res.rules.len() > 300, "{} syscalls", res.rules.len());
    let getpid = &res.rules[&nr("getpid")];
    assert_eq!((getpid.action, getpid.any_of.len()), (Action::Allow, 0));
    for denied in [
        "io_uring_setup",
        "io_uring_enter",
        "mount",
        "unshare",
        "setns",
        "keyctl",
    ] {
        assert!(!res.rules.contains_key(&nr(denied)), "{denied} is allowed");
    }
    // Allowed on amd64 only; names of other ABIs are skipped.
    assert!(res.rules.contains_key(&nr("arch_prctl")));
    assert!(
        res.rules.contains_key(&nr("ptrace")),
        "minKernel 4.8 is met"
    );
}

#[test]
fn clone_needs_no_namespace_flag_and_clone3_gets_enosys_without_sys_admin() {
    let res = resolve(docker_caps(), Arch::X86_64, KERNEL);
    let clone = &res.rules[&nr("clone")];
    assert_eq!(clone.action, Action::Allow);
    assert_eq!(
        clone.any_of,
        vec![vec![ArgRule {
            index: 0,
            value: 0x7e02_0000,
            value_two: 0,
            op: CmpOp::MaskedEq
        }]]
    );
    assert_eq!(res.rules[&nr("clone3")].action, Action::Errno(ENOSYS));
    let personas: Vec<u64> = res.rules[&nr("personality")]
        .any_of
        .iter()
        .map(|all| all[0].value)
        .collect();
    assert_eq!(personas, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
}

#[test]
fn sys_admin_allows_namespaces_and_mounts() {
    let res = resolve(&with(Capability::CAP_SYS_ADMIN), Arch::X86_64, KERNEL);
    for name in [
        "clone",
        "clone3",
        "unshare",
        "setns",
        "mount",
        "umount2",
        "sethostname",
    ] {
        let rule = &res.rules[&nr(name)];
        assert_eq!(
            (rule.action, rule.any_of.len()),
            (Action::Allow, 0),
            "{name}"
        );
    }
}

#[test]
fn capabilities_widen_the_list_as_in_docker() {
    let base = resolve(docker_caps(), Arch::X86_64, KERNEL);
    for (cap, name) in [
        (Capability::CAP_SYS_PTRACE, "kcmp"),
        (Capability::CAP_SYS_TIME, "settimeofday"),
        (Capability::CAP_SYS_MODULE, "init_module"),
        (Capability::CAP_SYS_BOOT, "reboot"),
        (Capability::CAP_DAC_READ_SEARCH, "open_by_handle_at"),
        (Capability::CAP_BPF, "bpf"),
    ] {
        assert!(!base.rules.contains_key(&nr(name)), "{name} without {cap}");
        let res = resolve(&with(cap), Arch::X86_64, KERNEL);
        assert_eq!(
            res.rules[&nr(name)].action,
            Action::Allow,
            "{name} with {cap}"
        );
    }
}

#[test]
fn min_kernel_is_compared_with_the_kernel_given() {
    let old = KernelVersion { major: 4, minor: 4 };
    assert!(
        !resolve(docker_caps(), Arch::X86_64, old)
            .rules
            .contains_key(&nr("ptrace"))
    );
    // CAP_SYS_PTRACE allows it whatever the kernel.
    let res = resolve(&with(Capability::CAP_SYS_PTRACE), Arch::X86_64, old);
    assert!(res.rules.contains_key(&nr("ptrace")));
}

#[test]
fn other_architectures_use_their_own_numbers_and_rules() {
    let res = resolve(docker_caps(), Arch::Aarch64, KERNEL);
    assert_eq!(
        res.rules[&172].action,
        Action::Allow,
        "getpid is 172 on aarch64"
    );
    // arch_prctl is amd64-only: on aarch64 number 158 is x86_64's arch_prctl, aarch64's
    // getgroups; the rule set must hold aarch64's meaning.
    assert_eq!(Arch::Aarch64.syscall_nr("arch_prctl"), None);
    assert_eq!(Arch::Aarch64.syscall_nr("getgroups"), Some(158));
    assert_eq!(
        Arch::Aarch64.syscall_nr("open"),
        None,
        "no open(2) on aarch64"
    );
    let riscv = resolve(docker_caps(), Arch::Riscv64, KERNEL);
    let flush = Arch::Riscv64.syscall_nr("riscv_flush_icache").unwrap();
    assert!(riscv.rules.contains_key(&flush));
}

#[test]
fn kernel_versions_parse_like_moby() {
    let v = |s: &str| s.parse::<KernelVersion>().map(|k| k.to_string());
    assert_eq!(v("4.8").unwrap(), "4.8");
    assert_eq!(v("6.18.44-fc-v1300").unwrap(), "6.18");
    assert_eq!(v("3.12-1-amd64").unwrap(), "3.12");
    assert!(v("6").is_err());
    assert!(v("x.1").is_err());
    assert!(KernelVersion::running().is_ok());
}

fn resolve_json(json: &str) -> Result<profile::Resolution, SeccompError> {
    let caps = names(docker_caps());
    Profile::parse(json)?.resolve(&Target {
        arch: Arch::X86_64,
        caps: &caps,
        kernel: KERNEL,
    })
}

#[test]
fn profiles_that_cannot_be_honoured_are_refused_with_the_reason() {
    let conflict = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["getpid"],"action":"SCMP_ACT_ALLOW"},
        {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":5}]}"#;
    let e = resolve_json(conflict).unwrap_err().to_string();
    assert!(e.contains("getpid two actions"), "{e}");
    let both = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"name":"read","names":["getpid"],"action":"SCMP_ACT_ALLOW"}]}"#;
    assert!(matches!(
        resolve_json(both),
        Err(SeccompError::NameAndNames { .. })
    ));
    let notify = r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#;
    assert!(matches!(
        resolve_json(notify),
        Err(SeccompError::Unsupported { .. })
    ));
    let arg = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#;
    assert!(matches!(
        resolve_json(arg),
        Err(SeccompError::ArgIndex { index: 6, .. })
    ));
    assert!(matches!(resolve_json("{"), Err(SeccompError::Parse { .. })));
}

#[test]
fn rules_for_one_syscall_are_ored_and_errno_defaults_to_eperm() {
    let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
        {"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
        {"names":["write"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
        {"names":["write"],"action":"SCMP_ACT_ALLOW"},
        {"names":["umount","getpid"],"action":"SCMP_ACT_ERRNO"}]}"#;
    let res = resolve_json(json).unwrap();
    assert_eq!(res.default, Action::Errno(EPERM));
    assert_eq!(res.rules[&nr("read")].any_of.len(), 2);
    assert!(
        res.rules[&nr("write")].any_of.is_empty(),
        "unconditional wins"
    );
    assert_eq!(res.rules[&nr("getpid")].action, Action::Errno(EPERM));
    assert_eq!(res.rules.len(), 3, "umount does not exist on x86_64");
}

// --- the programs ------------------------------------------------------------------------

/// The old deny-list's assertions that still hold for the allow-list.
#[test]
fn compiles_for_x86_64_with_the_conditional_calls() {
    fn compared(p: &BpfProgram, code: u16) -> Vec<u32> {
        p.iter().filter(|i| i.code == code).map(|i| i.k).collect()
    }
    fn returns(p: &BpfProgram) -> Vec<u32> {
        p.iter().filter(|i| i.code == 0x06).map(|i| i.k).collect()
    }
    let progs = docker_programs();
    assert_eq!(progs.len(), 2, "the allow-list, then clone3 -> ENOSYS");
    let (allow, clone3) = (&progs[0], &progs[1]);
    // Syscalls allowed under conditions are segments of their own: the search compares
    // their numbers (jge).
    let starts = compared(allow, 0x35);
    for name in ["clone", "personality", "socket"] {
        assert!(starts.contains(&nr(name)), "{name} not in the filter");
    }
    assert!(
        compared(allow, 0x15).contains(&0x20008),
        "personality values compared"
    );
    assert!(returns(allow).contains(&errno(EPERM)));
    assert!(returns(allow).contains(&ALLOW));
    assert!(returns(clone3).contains(&errno(ENOSYS)));
    assert!(compared(clone3, 0x35).contains(&nr("clone3")));
    // Every program starts with the gate.
    for p in &progs {
        assert_eq!(p[..6], bpf::gate(Arch::X86_64)[..]);
    }
    // Runs of allowed syscalls share one `ret`: far fewer instructions than syscalls.
    assert!(allow.len() < 600, "{} instructions", allow.len());
}

#[test]
fn the_filter_answers_as_docker_does() {
    let progs = docker_programs();
    let v = |name: &str, args: &[u64]| verdict(&progs, &Call::x86_64(name, args));
    assert_eq!(v("getpid", &[]), ALLOW);
    assert_eq!(v("io_uring_setup", &[1, 0]), errno(EPERM));
    assert_eq!(v("clone3", &[0, 88]), errno(ENOSYS));
    assert_eq!(v("clone", &[libc::SIGCHLD as u64]), ALLOW);
    let newuser = (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64;
    assert_eq!(v("clone", &[newuser]), errno(EPERM));
    assert_eq!(v("unshare", &[libc::CLONE_NEWUSER as u64]), errno(EPERM));
    assert_eq!(v("personality", &[0xffff_ffff]), ALLOW);
    assert_eq!(v("personality", &[0x0004_0000]), errno(EPERM));
    // All 64 bits are compared, as libseccomp does.
    assert_eq!(v("personality", &[0x1_0000_0000]), errno(EPERM));
    assert_eq!(v("socket", &[libc::AF_INET as u64]), ALLOW);
    assert_eq!(v("socket", &[libc::AF_VSOCK as u64]), errno(EPERM));
    // Syscall numbers past the table's end (newer than the profile) fail too.
    assert_eq!(
        verdict(&progs, &Call::raw(Arch::X86_64.audit(), 1000, &[])),
        errno(EPERM)
    );

    let admin = compile(&with(Capability::CAP_SYS_ADMIN), Arch::X86_64, KERNEL).unwrap();
    assert_eq!(admin.len(), 1, "no clone3 program with CAP_SYS_ADMIN");
    assert_eq!(verdict(&admin, &Call::x86_64("clone", &[newuser])), ALLOW);
    assert_eq!(verdict(&admin, &Call::x86_64("clone3", &[0, 88])), ALLOW);
}

#[test]
fn the_search_tree_finds_every_number() {
    let res = resolve(docker_caps(), Arch::X86_64, KERNEL);
    let progs = docker_programs();
    let mut unconditional = 0;
    for nr in 0..1100 {
        let got = verdict(&progs, &Call::raw(Arch::X86_64.audit(), nr, &[]));
        match res.rules.get(&nr) {
            None => assert_eq!(got, errno(EPERM), "syscall {nr}"),
            Some(r) if r.any_of.is_empty() => {
                unconditional += 1;
                let want = if r.action == Action::Allow {
                    ALLOW
                } else {
                    errno(ENOSYS)
                };
                assert_eq!(got, want, "syscall {nr}");
            }
            Some(_) => {}
        }
    }
    assert!(unconditional > 300);
    // Every size of tree, leaves and inner nodes alike: n syscalls, 3 apart.
    for n in 1..=40u32 {
        let names: Vec<String> = (0..n)
            .map(|i| format!("\"{}\"", syscalls::x86_64::Sysno::from(i * 3).name()))
            .collect();
        let json = format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":7,"syscalls":[{{"names":[{}],"action":"SCMP_ACT_ALLOW"}}]}}"#,
            names.join(",")
        );
        let progs = compile_profile(&json, docker_caps(), Arch::X86_64, KERNEL).unwrap();
        for nr in 0..n * 3 + 2 {
            let want = if nr % 3 == 0 && nr < n * 3 {
                ALLOW
            } else {
                errno(7)
            };
            let got = verdict(&progs, &Call::raw(Arch::X86_64.audit(), nr, &[]));
            assert_eq!(got, want, "{n} syscalls, number {nr}");
        }
    }
}

#[test]
fn x32_numbers_and_foreign_architectures_get_enosys() {
    let progs = docker_programs();
    let native = Arch::X86_64.audit();
    for name in ["getpid", "read", "clone3", "io_uring_setup"] {
        let x32 = Call::raw(native, X32_SYSCALL_BIT | nr(name), &[]);
        assert_eq!(verdict(&progs, &x32), errno(ENOSYS), "x32 {name}");
    }
    // x32 numbers proper start at 512; the bit alone must be enough.
    assert_eq!(
        verdict(&progs, &Call::raw(native, u32::MAX, &[])),
        errno(ENOSYS)
    );
    // i386's getpid is 20 (x86_64's getpid is 39, 20 is writev there).
    let i386 = Call::raw(AUDIT_ARCH_I386, 20, &[]);
    assert_eq!(verdict(&progs, &i386), errno(ENOSYS));
    let aarch64 = compile(docker_caps(), Arch::Aarch64, KERNEL).unwrap();
    assert_eq!(
        verdict(&aarch64, &Call::raw(0x4000_0028, 20, &[])),
        errno(ENOSYS),
        "arm32"
    );
    assert_eq!(
        verdict(&aarch64, &Call::raw(Arch::Aarch64.audit(), 172, &[])),
        ALLOW
    );
}

#[test]
fn a_profile_with_default_allow_still_gets_the_gate_and_its_errnos() {
    let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
        {"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#;
    let progs = compile_profile(json, docker_caps(), Arch::X86_64, KERNEL).unwrap();
    let v = |name: &str| verdict(&progs, &Call::x86_64(name, &[]));
    assert_eq!(v("read"), ALLOW);
    assert_eq!(v("getpid"), errno(13));
    assert_eq!(v("getppid"), libc::SECCOMP_RET_KILL_PROCESS);
    let x32 = Call::raw(Arch::X86_64.audit(), X32_SYSCALL_BIT | nr("read"), &[]);
    assert_eq!(verdict(&progs, &x32), errno(ENOSYS));
}

// --- the programs computed at build time --------------------------------------------------

const NEWEST: KernelVersion = KernelVersion {
    major: u32::MAX,
    minor: u32::MAX,
};

#[test]
fn build_rs_computed_the_programs_compile_gives_for_docker_caps() {
    let arch = Arch::native().unwrap();
    assert_eq!(PRECOMPUTED.arch, Some(arch));
    assert_eq!(
        PRECOMPUTED.programs(),
        compile(docker_caps(), arch, NEWEST).unwrap()
    );
    let running = KernelVersion::running().unwrap();
    assert!(PRECOMPUTED.fits(arch, &names(docker_caps()), running));
    assert_eq!(
        default_programs(docker_caps(), arch, running).unwrap(),
        compile(docker_caps(), arch, running).unwrap()
    );
    // The order of the capabilities does not matter.
    let mut reversed = names(docker_caps());
    reversed.reverse();
    assert!(PRECOMPUTED.fits(arch, &reversed, running));
}

#[test]
fn other_capabilities_and_old_kernels_are_compiled_at_start() {
    let arch = Arch::native().unwrap();
    let admin = with(Capability::CAP_SYS_ADMIN);
    assert!(!PRECOMPUTED.fits(arch, &names(&admin), NEWEST));
    assert_eq!(
        default_programs(&admin, arch, NEWEST).unwrap(),
        compile(&admin, arch, NEWEST).unwrap()
    );
    assert_ne!(
        default_programs(&admin, arch, NEWEST).unwrap(),
        PRECOMPUTED.programs()
    );
    let old = KernelVersion { major: 4, minor: 4 };
    assert!(!PRECOMPUTED.fits(arch, &names(docker_caps()), old));
    // A capability the profile does not name changes nothing.
    assert!(PRECOMPUTED.fits(arch, &names(&with(Capability::CAP_NET_ADMIN)), NEWEST));
    // Dropping one it names does (chroot needs CAP_SYS_CHROOT).
    let no_chroot: Vec<Capability> = docker_caps()
        .iter()
        .copied()
        .filter(|c| *c != Capability::CAP_SYS_CHROOT)
        .collect();
    assert!(!PRECOMPUTED.fits(arch, &names(&no_chroot), NEWEST));
    let chroot = compile(&no_chroot, Arch::X86_64, NEWEST).unwrap();
    assert_eq!(
        verdict(&chroot, &Call::x86_64("chroot", &[0])),
        errno(EPERM)
    );
    assert_eq!(
        verdict(&docker_programs(), &Call::x86_64("chroot", &[0])),
        ALLOW
    );
}

#[test]
fn build_rs_knows_docker_default_capabilities() {
    let mut ours = names(docker_caps());
    let mut theirs: Vec<String> = precompute::DOCKER_DEFAULT_CAPS
        .iter()
        .map(ToString::to_string)
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
    let src = precompute::render(DEFAULT_PROFILE, Some(Arch::X86_64)).unwrap();
    assert!(
        src.contains("caps_present: &[\"CAP_SYS_CHROOT\"]"),
        "{src:.400}"
    );
    assert!(src.contains("KernelVersion { major: 4, minor: 8 }"));
    let none = precompute::render(DEFAULT_PROFILE, None).unwrap();
    assert!(none.contains("arch: None"));
}

/// Figures for the module documentation: `cargo test --bin burrow compile_time --
/// --nocapture`. The bounds only catch a gross regression.
#[test]
fn compile_time_is_small() {
    let kernel = KernelVersion::running().unwrap();
    let arch = Arch::native().unwrap();
    let _ = compile(docker_caps(), arch, kernel).unwrap();
    let runs = 50;
    let start = std::time::Instant::now();
    for _ in 0..runs {
        std::hint::black_box(compile(docker_caps(), arch, kernel).unwrap());
    }
    let each = start.elapsed() / runs;
    let profile = Profile::parse(DEFAULT_PROFILE).unwrap();
    let start = std::time::Instant::now();
    for _ in 0..runs {
        std::hint::black_box(Profile::parse(DEFAULT_PROFILE).unwrap());
    }
    let parse = start.elapsed() / runs;
    let caps = names(docker_caps());
    let target = Target {
        arch,
        caps: &caps,
        kernel,
    };
    let start = std::time::Instant::now();
    for _ in 0..runs {
        std::hint::black_box(profile.resolve(&target).unwrap());
    }
    let resolve = start.elapsed() / runs;
    let start = std::time::Instant::now();
    for _ in 0..runs {
        std::hint::black_box(default_programs(docker_caps(), arch, kernel).unwrap());
    }
    let precomputed = start.elapsed() / runs;
    let lens: Vec<usize> = compile(docker_caps(), arch, kernel)
        .unwrap()
        .iter()
        .map(Vec::len)
        .collect();
    eprintln!(
        "seccomp compile: {each:?} per filter (parse {parse:?}, resolve {resolve:?}); precomputed {precomputed:?}; programs of {lens:?} instructions"
    );
    assert!(each < std::time::Duration::from_millis(50), "{each:?}");
    assert!(precomputed < each / 4, "{precomputed:?} vs {each:?}");
}
