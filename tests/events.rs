//! `events`: container and image changes and healthcheck transitions, recorded by
//! whichever command or monitor made them.

mod common;

use std::time::Duration;

use common::User;

#[test]
fn container_and_image_events_with_health_transitions() {
    let u = User::new("events");
    let since = common::now();
    let img = u.pull("busybox");
    u.burrow(&["tag", &img, "mine/ev:1"]).ok();
    u.burrow(&[
        "run",
        "-d",
        "--name",
        "ev",
        "--health-cmd",
        "test -e /tmp/up",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        &img,
        "sleep",
        "308.8",
    ])
    .ok();
    std::thread::sleep(Duration::from_millis(400));
    u.burrow(&["exec", "ev", "touch", "/tmp/up"]).ok();
    std::thread::sleep(Duration::from_millis(400));
    u.burrow(&["stop", "-t", "0", "ev"]).ok();
    u.burrow(&["rm", "ev"]).ok();
    u.burrow(&["rmi", "mine/ev:1"]).ok();
    let until = common::now();
    let o = u.burrow(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = o.ok().stdout.lines().collect();
    let expected = [
        "create",
        "start",
        "health_status: unhealthy",
        "health_status: healthy",
        "die",
        "stop",
        "destroy",
    ];
    assert_eq!(actions, expected, "{o:#?}");
    let o = u.burrow(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=die",
    ]);
    let line = o.ok().stdout.clone();
    assert!(line.contains(" container die "), "{line}");
    assert!(
        line.contains("exitCode=137") && line.contains("name=ev"),
        "{line}"
    );
    let o = u.burrow(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert_eq!(
        o.ok().stdout,
        format!("pull {img}\ntag mine/ev:1\nuntag mine/ev:1\n"),
        "{o:#?}"
    );
    u.burrow(&["events", "--since", "yesterday-ish", "--until", "0s"])
        .code(125)
        .one_line_error();
}

#[test]
fn events_follows_new_events_until_stopped() {
    let u = User::new("events_follow");
    let img = u.pull("busybox");
    let follower = u
        .command(&[
            "events",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    u.burrow(&["create", "--name", "followed", &img, "true"])
        .ok();
    u.burrow(&["rename", "followed", "renamed"]).ok();
    std::thread::sleep(Duration::from_millis(500));
    // runuser's child is burrow: end it, not just runuser.
    std::process::Command::new("pkill")
        .args(["-u", &u.name, "-f", "events --format"])
        .status()
        .unwrap();
    let o = follower.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text, "create followed\nrename renamed\n");
}
