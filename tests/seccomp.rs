//! The seccomp filter as a container sees it: `fixtures/syscalls` runs a static probe
//! (tests/fixtures/syscall_probe.c) that prints one line per syscall it tries.

mod common;

use common::User;

/// The probe's lines as (syscall, result) pairs.
fn probe(u: &User, img: &str, flags: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.push(img);
    let o = u.burrow(&args);
    o.ok();
    o.stdout
        .lines()
        .map(|l| match l.split_once(' ') {
            Some((name, result)) => (name.to_string(), result.to_string()),
            None => panic!("unexpected probe line {l:?}: {o:#?}"),
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn the_default_filter_refuses_what_docker_refuses() {
    let u = User::new("seccomp_default");
    let img = u.pull("syscalls");
    assert_eq!(
        probe(&u, &img, &[]),
        pairs(&[
            ("getpid", "ok"),
            // Not in Docker's allow-list: the profile's defaultErrnoRet.
            ("io_uring_setup", "EPERM"),
            // The x32 ABI is refused whether or not the kernel has it.
            ("x32_getpid", "ENOSYS"),
            // ENOSYS, so that libc falls back to clone.
            ("clone3", "ENOSYS"),
            ("clone_newuser", "EPERM"),
            ("personality_query", "ok"),
            ("personality_no_randomize", "EPERM"),
            ("unshare_newuser", "EPERM"),
        ])
    );
}

#[test]
fn the_filter_holds_for_a_non_root_user_and_for_exec() {
    let u = User::new("seccomp_exec");
    let img = u.pull("syscalls");
    let user = probe(&u, &img, &["--user", "1000:1000"]);
    assert!(
        user.contains(&("io_uring_setup".into(), "EPERM".into())),
        "{user:?}"
    );
    assert!(
        user.contains(&("unshare_newuser".into(), "EPERM".into())),
        "{user:?}"
    );
    assert!(user.contains(&("getpid".into(), "ok".into())), "{user:?}");

    u.burrow(&["run", "-d", "--name", "probe-exec", &img, "sleep", "30"])
        .ok();
    let o = u.burrow(&["exec", "probe-exec", "/bin/syscall-probe"]);
    o.ok();
    for line in [
        "getpid ok",
        "io_uring_setup EPERM",
        "x32_getpid ENOSYS",
        "clone_newuser EPERM",
        "unshare_newuser EPERM",
    ] {
        assert!(
            o.stdout.lines().any(|l| l == line),
            "{line:?} missing: {o:#?}"
        );
    }
    u.burrow(&["rm", "-f", "probe-exec"]).ok();
}
