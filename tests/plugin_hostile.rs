//! Hostile log drivers (tests/plugins: spin, bomb, snoop) installed as plugins and used by
//! containers, as the unprivileged user: each fails its call cleanly, the lines it lost are
//! counted (`inspect`) and announced (`events`), and the container neither waits for it nor
//! keeps `stop` or `rm -f` from finishing. snoop, run under strace, reaches no file or
//! address it was not given.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::User;

const TARGET_DIR: &str = "/var/tmp/burrow-test/hostile-plugins-target";

/// The longest a write may take before the host abandons it (src/plugin/instance.rs): a
/// command that waited for a spinning plugin takes at least this long.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// The directory holding the hostile plugins' .wasm files, built with cargo once per run.
fn hostile_dir() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(build_hostile)
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn build_hostile() -> Result<PathBuf, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plugins/Cargo.toml");
    common::build_wasm(&manifest, Path::new(TARGET_DIR))
}

/// Installs hostile plugin `name` as `as_name` with `grant` (`install` options), from a
/// copy in the user's home.
fn install(u: &User, name: &str, as_name: &str, grant: &[&str]) {
    let wasm = hostile_dir().join(format!("hostile_{name}.wasm"));
    let copy = u.home.join(format!("{as_name}.wasm"));
    std::fs::copy(&wasm, &copy).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    let path = copy.display().to_string();
    let mut args = vec!["plugin", "install", path.as_str(), "--alias", as_name];
    args.extend_from_slice(grant);
    u.burrow(&args).ok();
    let o = u.burrow(&["plugin", "ls", "-q"]);
    assert!(o.ok().stdout.lines().any(|l| l == as_name), "{o:#?}");
}

/// Polls `probe` until it returns Some or `limit` passes.
#[track_caller]
fn eventually<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < until, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The lost-line count of a container once its relay has recorded it (the relay records it
/// when the container's output ends, after a write still running finished or timed out).
#[track_caller]
fn lost_lines(u: &User, name: &str) -> u64 {
    let n = eventually(
        &format!("{name}: LogDropped counted"),
        WRITE_DEADLINE * 3,
        || {
            let n: u64 = u.field(name, "{{.LogDropped}}").parse().unwrap();
            (n > 0).then_some(n)
        },
    );
    // Given a moment to grow further: one count per run, not a running tally.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(u.field(name, "{{.LogDropped}}"), n.to_string());
    n
}

/// The `log_dropped` events of container `name` since `since`, as "DROPPED DRIVER".
#[track_caller]
fn drop_events(u: &User, name: &str, since: &str) -> Vec<String> {
    eventually(
        &format!("{name}: a log_dropped event"),
        WRITE_DEADLINE,
        || {
            let until = common::now();
            let filter = format!("container={name}");
            let o = u.burrow(&[
                "events",
                "--since",
                since,
                "--until",
                &until,
                "--filter",
                "event=log_dropped",
                "--filter",
                &filter,
                "--format",
                "{{.Actor.Attributes.dropped}} {{.Actor.Attributes.driver}}",
            ]);
            let lines: Vec<String> = o.ok().stdout.lines().map(str::to_string).collect();
            (!lines.is_empty()).then_some(lines)
        },
    )
}

/// The processes of `user` whose command line names container `id` (monitor, relay,
/// prober), as "PID COMMAND LINE".
fn processes_of(user: &str, id: &str) -> Vec<String> {
    let o = Command::new("pgrep")
        .args(["-u", user, "-a", "-f", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The pid of container `id`'s relay, the process that hosts its log driver.
fn relay_pid(u: &User, id: &str) -> u32 {
    let needle = format!("__relay {id}");
    let lines = processes_of(&u.name, &needle);
    match &lines[..] {
        [one] => one.split_whitespace().next().unwrap().parse().unwrap(),
        _ => panic!("not one relay for {id}: {lines:?}"),
    }
}

/// A figure from /proc/PID/status, in kB.
fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// How a hostile plugin loses lines: spin and bomb only the batch holding their trigger
/// line (a later write runs on a fresh instance), snoop every line.
#[derive(Clone, Copy)]
struct Hostile {
    driver: &'static str,
    trigger: &'static str,
    every_line: bool,
}

impl Hostile {
    /// Lines lost of `lines` written, one of them the trigger, each in a batch of its own.
    fn lost(self, lines: u64) -> u64 {
        if self.every_line { lines } else { 1 }
    }
}

/// The same container story for every hostile plugin: detached, foreground, stopped while
/// the plugin misbehaves, removed while it misbehaves.
fn the_container_runs_on(u: &User, img: &str, h: Hostile) {
    let since = common::now();
    let d = h.driver;
    let t = h.trigger;

    // Detached. The sleeps put the trigger line in a batch of its own, and keep the
    // container busy while the plugin misbehaves (spin: for the whole write deadline).
    let script = format!(
        "echo before; sleep 1; echo {t}; sleep 1; echo after; touch /tmp/marker; sleep 2; exit 3"
    );
    let name = format!("{d}-detached");
    u.burrow(&[
        "run",
        "-d",
        "--name",
        &name,
        "--log-driver",
        d,
        img,
        "sh",
        "-c",
        &script,
    ])
    .ok();
    let id = u.field(&name, "{{.Id}}");
    let relay = relay_pid(u, &id);
    // The container got past its trigger line and still runs.
    eventually(
        &format!("{name}: the marker written after the trigger"),
        Duration::from_secs(4),
        || {
            u.burrow(&["exec", &name, "test", "-e", "/tmp/marker"])
                .code
                .eq(&0)
                .then_some(())
        },
    );
    assert_eq!(u.field(&name, "{{.State.Running}}"), "true");
    // The memory cap held (bomb): the relay hosting it did not grow much past it (32 MiB
    // per instance over a relay of about 26 MiB: 57 MiB at the peak when this was written).
    let peak_mb = status_kb(relay, "VmHWM") / 1024;
    assert!(peak_mb < 128, "{name}: the relay peaked at {peak_mb} MiB");
    let o = u.burrow(&["wait", &name]);
    assert_eq!(o.ok().stdout, "3\n", "{o:#?}");
    assert_eq!(u.field(&name, "{{.State.ExitCode}}"), "3");
    assert_eq!(lost_lines(u, &name), h.lost(3), "{name}");
    // The dual-logging cache kept what the driver lost.
    let o = u.burrow(&["logs", &name]);
    assert_eq!(o.ok().stdout, format!("before\n{t}\nafter\n"), "{o:#?}");
    assert_eq!(
        drop_events(u, &name, &since),
        [format!("{} {d}", h.lost(3))],
        "{name}"
    );

    // Foreground: the output and the container's own exit code arrive.
    let name = format!("{d}-foreground");
    let script = format!("echo {t}; sleep 1; echo after; exit 4");
    let started = Instant::now();
    let o = u.burrow(&[
        "run",
        "--name",
        &name,
        "--log-driver",
        d,
        img,
        "sh",
        "-c",
        &script,
    ]);
    let took = started.elapsed();
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (4, &*format!("{t}\nafter\n")),
        "{o:#?}"
    );
    assert_eq!(o.stderr, "", "{o:#?}");
    // The relay holds the exit code until the driver took the run's lines, for at most
    // one write deadline (src/engine/attach.rs, `send_exit`).
    assert!(took < WRITE_DEADLINE * 2, "{name}: the run took {took:?}");
    assert_eq!(lost_lines(u, &name), h.lost(2), "{name}");
    assert_eq!(
        drop_events(u, &name, &since),
        [format!("{} {d}", h.lost(2))],
        "{name}"
    );

    // Stopped while the plugin misbehaves: the container gets its stop signal and handles
    // it; `stop` returns well before its 10 s timeout.
    let name = format!("{d}-stopped");
    let script = format!("trap 'echo stopped; exit 7' TERM; echo {t}; while :; do sleep 0.1; done");
    u.burrow(&[
        "run",
        "-d",
        "--name",
        &name,
        "--log-driver",
        d,
        img,
        "sh",
        "-c",
        &script,
    ])
    .ok();
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    u.burrow(&["stop", &name]).ok();
    let took = started.elapsed();
    assert!(took < WRITE_DEADLINE, "{name}: stop took {took:?}");
    assert_eq!(u.field(&name, "{{.State.Status}}"), "exited");
    assert_eq!(u.field(&name, "{{.State.ExitCode}}"), "7");
    assert_eq!(lost_lines(u, &name), h.lost(2), "{name}");

    // Removed while the plugin misbehaves: nothing of the container is left running.
    let name = format!("{d}-removed");
    let script = format!("echo {t}; exec sleep 100");
    u.burrow(&[
        "run",
        "-d",
        "--name",
        &name,
        "--log-driver",
        d,
        img,
        "sh",
        "-c",
        &script,
    ])
    .ok();
    let id = u.field(&name, "{{.Id}}");
    let pid = u.field(&name, "{{.State.Pid}}");
    assert_ne!(pid, "0", "{name} runs");
    let running = processes_of(&u.name, &id);
    for role in ["__monitor", "__relay"] {
        assert!(
            running.iter().any(|p| p.contains(role)),
            "no {role} among {running:#?}"
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    u.burrow(&["rm", "-f", &name]).ok();
    let took = started.elapsed();
    assert!(took < WRITE_DEADLINE, "{name}: rm -f took {took:?}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "{name}: the container's pid {pid} survived rm -f"
    );
    // Processes exit a moment after their pipes close; a second is plenty for that.
    let until = Instant::now() + Duration::from_secs(1);
    let mut left = processes_of(&u.name, &id);
    while !left.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
        left = processes_of(&u.name, &id);
    }
    assert!(
        left.is_empty(),
        "{name}: processes left {:?} after rm -f: {left:?}",
        started.elapsed()
    );
    let o = u.burrow(&["ps", "-a", "-q", "--filter", &format!("name={name}")]);
    assert_eq!(o.ok().stdout, "");
}

/// Installs hostile plugin `driver` (granted everything it asks for) and runs the container
/// story with it; `every_line`: it loses every line, not only its trigger.
fn container_runs_on_despite(driver: &'static str, every_line: bool) {
    let u = User::new(&format!("hostile_{driver}"));
    let img = u.pull("busybox");
    install(&u, driver, driver, &["--grant-all-permissions"]);
    let h = Hostile {
        driver,
        trigger: driver,
        every_line,
    };
    the_container_runs_on(&u, &img, h);
}

#[test]
fn a_spinning_plugin_times_out_and_the_container_runs_on() {
    container_runs_on_despite("spin", false);
}

/// bomb allocates until the memory cap stops it: its write traps (twice, with the retry).
#[test]
fn a_crashing_plugin_is_restarted_and_the_container_runs_on() {
    container_runs_on_despite("bomb", false);
}

/// snoop fails every write (with a report of what it reached); the container runs on.
#[test]
fn a_snooping_plugin_loses_every_line_and_the_container_runs_on() {
    container_runs_on_despite("snoop", true);
}

/// Runs a container logging through `driver` with its relay under strace and returns the
/// trace: every file and network call of the relay while snoop's writes ran.
fn traced_run(u: &User, img: &str, driver: &str) -> String {
    let name = format!("{driver}-traced");
    // Two seconds before the first line: time for strace to attach (checked below).
    let script = "sleep 2; echo one; sleep 0.5; echo two; exit 5";
    u.burrow(&[
        "run",
        "-d",
        "--name",
        &name,
        "--log-driver",
        driver,
        img,
        "sh",
        "-c",
        script,
    ])
    .ok();
    let id = u.field(&name, "{{.Id}}");
    let relay = relay_pid(u, &id);
    let trace = u
        .home
        .parent()
        .unwrap()
        .join(format!("{name}-{}.strace", u.name));
    let mut strace = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-s",
            "256",
            "-e",
            "trace=%file,%network,read",
            "-o",
        ])
        .arg(&trace)
        .args(["-p", &relay.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace is installed (apt-get install strace)");
    // Attached once the relay's threads name a tracer.
    eventually(
        "strace attached to the relay",
        Duration::from_secs(2),
        || {
            let tasks = std::fs::read_dir(format!("/proc/{relay}/task")).ok()?;
            let traced = tasks.flatten().all(|t| {
                std::fs::read_to_string(t.path().join("status")).is_ok_and(|s| {
                    s.lines()
                        .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0")
                })
            });
            traced.then_some(())
        },
    );
    let o = u.burrow(&["wait", &name]);
    assert_eq!(o.ok().stdout, "5\n", "{o:#?}");
    assert_eq!(lost_lines(u, &name), 2, "{name}: snoop fails every write");
    // strace ends with the relay, which ends once the lost lines are counted.
    let done = eventually("strace ended with the relay", WRITE_DEADLINE, || {
        strace.try_wait().unwrap()
    });
    let errors = std::io::read_to_string(strace.stderr.take().unwrap()).unwrap();
    assert!(done.success(), "strace failed: {errors}");
    let text = std::fs::read_to_string(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    u.burrow(&["rm", &name]).ok();
    // The trace covers the writes: the relay read the container's lines under it.
    assert!(
        text.contains("\"one\\n") && text.contains("\"two\\n"),
        "the trace missed the container's output:\n{text}"
    );
    text
}

/// What snoop tries beyond its grants, as the host would do it on its behalf.
#[track_caller]
fn reached_nothing(text: &str) {
    for (what, needle) in [
        ("read /etc/passwd", "\"/etc/passwd\""),
        ("list /home", "\"/home\""),
        ("list /", "\"/\""),
        ("a socket connection", "connect("),
        ("a bound socket", "bind("),
        ("the metadata service", "169.254.169.254"),
    ] {
        let hits: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
        assert!(hits.is_empty(), "snoop's relay tried to {what}: {hits:#?}");
    }
}

/// snoop, under strace, with every permission granted: it reaches no file and no address
/// (a file the user can read among them); only the "aws" secret it was granted is read for
/// it, which shows the trace would catch an open.
#[test]
fn a_snooping_plugin_reaches_only_what_it_was_granted() {
    let u = User::new("hostile_snoop_trace");
    let img = u.pull("busybox");
    let readable = Command::new("runuser")
        .args(["-u", &u.name, "--", "test", "-r", "/etc/passwd"])
        .status()
        .unwrap();
    assert!(readable.success(), "the test user can read /etc/passwd");
    let aws = u.home.join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[default]\naws_access_key_id = AKIDSNOOPTEST\naws_secret_access_key = do-not-leak\n",
    )
    .unwrap();
    let owned = Command::new("chown")
        .args(["-R", &format!("{}:", u.name)])
        .arg(&aws)
        .status()
        .unwrap();
    assert!(owned.success());
    install(&u, "snoop", "snoop", &["--grant-all-permissions"]);

    let trace = traced_run(&u, &img, "snoop");
    reached_nothing(&trace);
    let secret: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains(".aws/credentials"))
        .collect();
    assert!(
        !secret.is_empty(),
        "the granted secret was never read:\n{trace}"
    );
}
