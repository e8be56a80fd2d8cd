//! The README's first command ends in examples/first-run.sh: it must work as an
//! unprivileged user, offline.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::User;

#[test]
fn first_run_example_works_offline_as_a_user() {
    let u = User::new("first_run");
    // The checkout may be unreadable to the user: give it a copy of the script.
    let script = u.home.join("first-run.sh");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/first-run.sh"),
        &script,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = std::process::Command::new("runuser")
        .args(["-u", &u.name, "--", "env", "-i"])
        .arg(format!("HOME={}", u.home.display()))
        .arg("PATH=/usr/bin:/bin:/usr/sbin:/sbin")
        .arg(format!("BURROW={}", common::binary().display()))
        .arg("PORT=5997")
        .arg("bash")
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{o:?}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("hello from burrow: uid 0, pid 1, host name "),
        "{stdout}"
    );
}
