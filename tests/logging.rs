//! Log drivers as the user sees them: json-file and `logs`, syslog into a real rsyslog,
//! fluentd into a forward receiver, none, bad options, a server that is down, and a
//! plugin installed from the example template.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::User;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory the test user can use.
fn scratch(u: &User, name: &str) -> PathBuf {
    let dir = u.data_dir().parent().unwrap().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let ok = Command::new("chown")
        .arg(format!("{}:", u.name))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(ok.success());
    dir
}

#[test]
fn json_file_is_dockers_format_and_logs_reads_it_back() {
    let u = User::new("log_json");
    let img = u.pull("busybox");
    let script = "echo 'a <b> & c'; printf 'tab\\there\\n' >&2; sleep 0.3; echo last";
    let o = u.burrow(&[
        "run",
        "--name",
        "j",
        "--log-opt",
        "labels=l",
        "--label",
        "l=v",
        &img,
        "sh",
        "-c",
        script,
    ]);
    o.ok();
    // The file: one JSON object per line, Docker's key order and escaping.
    let path = u.field("j", "{{.LogPath}}");
    assert!(path.ends_with("-json.log"), "{path}");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let strip_time = |l: &str| l.split(",\"time\":").next().unwrap().to_string();
    let mut got: Vec<String> = lines.iter().map(|l| strip_time(l)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            r#"{"log":"a \u003cb\u003e \u0026 c\n","stream":"stdout","attrs":{"l":"v"}"#,
            r#"{"log":"last\n","stream":"stdout","attrs":{"l":"v"}"#,
            r#"{"log":"tab\u0009here\n","stream":"stderr","attrs":{"l":"v"}"#,
        ]
    );
    assert!(lines.iter().all(|l| l.ends_with("Z\"}")), "{text}");
    // `logs` splits the streams again, and knows tail, timestamps and details.
    let o = u.burrow(&["logs", "j"]);
    assert_eq!(o.ok().stdout, "a <b> & c\nlast\n");
    assert_eq!(o.stderr, "tab\there\n");
    let o = u.burrow(&["logs", "--tail", "1", "-t", "--details", "j"]);
    let out = &o.ok().stdout;
    let (stamp, rest) = out.split_once(' ').unwrap();
    assert_eq!(rest, "l=v last\n", "{out:?}");
    assert_eq!(
        stamp.len(),
        "2026-11-23T18:50:14.957982313Z".len(),
        "{stamp}"
    );
    let o = u.burrow(&["logs", "--since", "4000000000", "j"]);
    assert_eq!(o.ok().stdout, "");
    // A line over 16 KiB is stored in chunks and read back whole.
    let o = u.burrow(&[
        "run",
        "--name",
        "long",
        &img,
        "sh",
        "-c",
        "head -c 40000 /dev/zero | tr '\\0' x; echo",
    ]);
    o.ok();
    let text = std::fs::read_to_string(u.field("long", "{{.LogPath}}")).unwrap();
    assert_eq!(
        text.lines().count(),
        3,
        "chunks of 16384, 16384 and 7232 bytes"
    );
    let o = u.burrow(&["logs", "long"]);
    assert_eq!(o.ok().stdout, format!("{}\n", "x".repeat(40000)));
}

#[test]
fn json_file_rotates_and_logs_follows() {
    let u = User::new("log_rotate");
    let img = u.pull("busybox");
    let o = u.burrow(&[
        "run",
        "--name",
        "r",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        &img,
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    o.ok();
    let path = PathBuf::from(u.field("r", "{{.LogPath}}"));
    let dir = path.parent().unwrap();
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let id = u.field("r", "{{.Id}}");
    assert_eq!(
        files,
        [format!("{id}-json.log"), format!("{id}-json.log.1")]
    );
    // What is left ends with the last line.
    let o = u.burrow(&["logs", "--tail", "2", "r"]);
    assert_eq!(o.ok().stdout, "line-198\nline-199\n");
    // -f follows a running container until it stops.
    u.burrow(&[
        "run",
        "-d",
        "--name",
        "f",
        &img,
        "sh",
        "-c",
        "echo one; sleep 1; echo two",
    ])
    .ok();
    let o = u.burrow(&["logs", "-f", "f"]);
    assert_eq!(o.ok().stdout, "one\ntwo\n");
}

#[test]
fn bad_log_options_are_refused_at_create() {
    let u = User::new("log_bad");
    let img = u.pull("busybox");
    let o = u.burrow(&["create", "--log-opt", "foo=bar", &img, "true"]);
    o.code(125)
        .one_line_error()
        .stderr_has("unknown log opt 'foo' for json-file log driver");
    let o = u.burrow(&["create", "--log-opt", "max-buffer-size=1m", &img, "true"]);
    o.code(125)
        .stderr_has("max-buffer-size option is only supported with 'mode=non-blocking'");
    let o = u.burrow(&["create", "--log-driver", "nope", &img, "true"]);
    o.code(125)
        .stderr_has("logger: no log driver named 'nope' is registered");
    let o = u.burrow(&[
        "create",
        "--log-driver",
        "syslog",
        "--log-opt",
        "syslog-facility=nope",
        &img,
        "true",
    ]);
    o.code(125).one_line_error();
    assert_eq!(u.burrow(&["ps", "-aq"]).ok().stdout, "", "nothing created");
    // none keeps nothing, and says so.
    u.burrow(&[
        "run",
        "--name",
        "n",
        "--log-driver",
        "none",
        &img,
        "echo",
        "hi",
    ])
    .ok();
    let o = u.burrow(&["logs", "n"]);
    o.code(125)
        .stderr_has("configured logging driver does not support reading");
}

/// rsyslog on loopback, stopped on drop.
struct Rsyslog(PathBuf);

impl Rsyslog {
    fn start(dir: &Path, port: u16) -> Rsyslog {
        let script = repo().join("tests/servers/rsyslog.sh");
        let ok = Command::new("bash")
            .arg(&script)
            .args([
                "start",
                &dir.display().to_string(),
                &port.to_string(),
                &(port + 1).to_string(),
            ])
            .status()
            .unwrap();
        assert!(ok.success(), "rsyslog did not start");
        // rsyslog (root) creates its sockets 0644; the test user must be able to connect.
        for sock in ["stream.sock", "dgram.sock"] {
            let path = dir.join(sock);
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
                .unwrap();
        }
        Rsyslog(dir.to_path_buf())
    }

    /// Waits for `n` lines in `file` (udp.log, tcp.log, unix.log …).
    fn lines(&self, file: &str, n: usize) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(self.0.join(file)).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(String::from).collect();
            if lines.len() >= n || Instant::now() > until {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("tests/servers/rsyslog.sh"))
            .args(["stop", &self.0.display().to_string()])
            .status();
    }
}

#[test]
fn syslog_reaches_rsyslog_byte_for_byte() {
    let u = User::new("log_syslog");
    let img = u.pull("busybox");
    // `run --rm --log-driver syslog --log-opt OPT… IMAGE CMD…`
    let syslog_run = |opts: &[&str], cmd: &[&str]| {
        let mut args = vec!["run", "--rm", "--log-driver", "syslog"];
        for o in opts {
            args.extend(["--log-opt", o]);
        }
        args.push(&img);
        args.extend_from_slice(cmd);
        u.burrow(&args)
    };
    let dir = scratch(&u, "rsyslog");
    let server = Rsyslog::start(&dir, 25514);
    u.burrow(&[
        "run",
        "--rm",
        "--name",
        "s1",
        "--log-driver",
        "syslog",
        "--log-opt",
        "syslog-address=udp://127.0.0.1:25514",
        "--log-opt",
        "tag={{.Name}}",
        &img,
        "sh",
        "-c",
        "echo to-udp; echo err-udp >&2",
    ])
    .ok();
    let lines = server.lines("udp.log", 2);
    let pid_free: Vec<String> = lines
        .iter()
        .map(|l| {
            // <30>Nov 23 07:49:25 s1[PID]: to-udp
            let (head, msg) = l.split_once("]: ").unwrap();
            format!("{} {}", &head[..4], msg) + if head.contains(" s1[") { " tag-ok" } else { "" }
        })
        .collect();
    assert_eq!(
        pid_free,
        ["<30> to-udp tag-ok", "<27> err-udp tag-ok"],
        "{lines:?}"
    );
    syslog_run(
        &[
            "syslog-address=tcp://127.0.0.1:25514",
            "syslog-format=rfc5424micro",
            "syslog-facility=local3",
        ],
        &["echo", "to-tcp"],
    )
    .ok();
    let lines = server.lines("tcp.log", 1);
    assert!(lines[0].starts_with("<158>1 "), "{lines:?}");
    assert!(lines[0].ends_with(" - to-tcp"), "{lines:?}");
    let sock = dir.join("stream.sock");
    syslog_run(
        &[&format!("syslog-address=unix://{}", sock.display())],
        &["echo", "to-unix"],
    )
    .ok();
    assert!(server.lines("unix.log", 1)[0].ends_with("]: to-unix"));
    let dgram = dir.join("dgram.sock");
    syslog_run(
        &[
            &format!("syslog-address=unixgram://{}", dgram.display()),
            "syslog-format=rfc3164",
        ],
        &["echo", "to-unixgram"],
    )
    .ok();
    let lines = server.lines("unixgram.log", 1);
    assert!(lines[0].starts_with("<30>"), "{lines:?}");
    assert!(lines[0].ends_with("]: to-unixgram"), "{lines:?}");
    // tcp+tls, the server's certificate checked against the CA the options name.
    let ca = format!("syslog-tls-ca-cert={}", dir.join("ca.pem").display());
    syslog_run(
        &[
            "syslog-address=tcp+tls://127.0.0.1:25515",
            &ca,
            "syslog-format=rfc5424",
        ],
        &["echo", "to-tls"],
    )
    .ok();
    let lines = server.lines("tls.log", 1);
    assert!(lines[0].starts_with("<30>1 "), "{lines:?}");
    assert!(lines[0].ends_with(" - to-tls"), "{lines:?}");
    // Without the CA the server's certificate is not trusted, and the start is refused.
    let o = syslog_run(&["syslog-address=tcp+tls://127.0.0.1:25515"], &["true"]);
    o.code(125)
        .one_line_error()
        .stderr_has("failed to initialize logging driver");
    // Dual logging: syslog cannot read back, the local cache can.
    u.burrow(&[
        "run",
        "--name",
        "cached",
        "--log-driver",
        "syslog",
        "--log-opt",
        "syslog-address=udp://127.0.0.1:25514",
        &img,
        "echo",
        "kept",
    ])
    .ok();
    assert_eq!(u.burrow(&["logs", "cached"]).ok().stdout, "kept\n");
    // A server that is not there: the container does not start, as with Docker.
    let o = syslog_run(&["syslog-address=tcp://127.0.0.1:25599"], &["true"]);
    o.code(125)
        .one_line_error()
        .stderr_has("failed to initialize logging driver");
}

/// The forward-protocol receiver, stopped on drop.
struct Fluent {
    child: Child,
    out: PathBuf,
    port: u16,
}

impl Fluent {
    fn start(dir: &Path) -> Fluent {
        let out = dir.join("fluent.jsonl");
        let mut child = Command::new("python3")
            .arg(repo().join("tests/servers/fluent_recv.py"))
            .args(["--port", "0", "--out", &out.display().to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        Fluent { child, out, port }
    }

    fn records(&self, n: usize) -> Vec<serde_json::Value> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            let recs: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if recs.len() >= n || Instant::now() > until {
                return recs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Fluent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn fluentd_records_arrive_and_a_dead_server_is_handled() {
    let u = User::new("log_fluent");
    let img = u.pull("busybox");
    let dir = scratch(&u, "fluent");
    let server = Fluent::start(&dir);
    let addr = format!("fluentd-address=127.0.0.1:{}", server.port);
    u.burrow(&[
        "run",
        "--name",
        "fl",
        "--log-driver",
        "fluentd",
        "--log-opt",
        &addr,
        "--log-opt",
        "fluentd-request-ack=true",
        &img,
        "sh",
        "-c",
        "echo hello; echo oops >&2",
    ])
    .ok();
    let recs = server.records(2);
    let id = u.field("fl", "{{.Id}}");
    let mut got: Vec<(String, String, String, String)> = recs
        .iter()
        .map(|r| {
            let rec = &r["record"];
            let s = |k: &str| rec[k].as_str().unwrap_or_default().to_string();
            (
                s("log"),
                s("source"),
                s("container_name"),
                s("container_id"),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("hello".into(), "stdout".into(), "/fl".into(), id.clone()),
            ("oops".into(), "stderr".into(), "/fl".into(), id.clone()),
        ]
    );
    assert_eq!(recs[0]["tag"].as_str().unwrap(), &id[..12]);
    drop(server);
    // Down, without async: the container does not start.
    let o = u.burrow(&[
        "run",
        "--rm",
        "--log-driver",
        "fluentd",
        "--log-opt",
        &addr,
        &img,
        "true",
    ]);
    o.code(125)
        .one_line_error()
        .stderr_has("failed to initialize logging driver");
    // Down, async and non-blocking: the container runs, and the loss is counted.
    let o = u.burrow(&[
        "run",
        "--name",
        "lossy",
        "--log-driver",
        "fluentd",
        "--log-opt",
        &addr,
        "--log-opt",
        "fluentd-async=true",
        "--log-opt",
        "mode=non-blocking",
        &img,
        "sh",
        "-c",
        "echo a; echo b; exit 3",
    ]);
    assert_eq!(o.code, 3, "{o:#?}");
    // The async buffer holds them while the container runs; the relay counts them once its
    // grace after the container's end is over.
    let until = Instant::now() + Duration::from_secs(15);
    let mut dropped = u.field("lossy", "{{.LogDropped}}");
    while dropped != "2" && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        dropped = u.field("lossy", "{{.LogDropped}}");
    }
    assert_eq!(dropped, "2");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let now = now.to_string();
    let o = u.burrow(&[
        "events",
        "--since",
        "0",
        "--until",
        &now,
        "--filter",
        "event=log_dropped",
        "--format",
        "{{.Actor.Attributes.dropped}}: {{.Actor.Attributes.error}}",
    ]);
    assert_eq!(
        o.ok().stdout,
        "2: the driver could not deliver what it held by 5 s after the container ended\n"
    );
    // The local cache still has them.
    assert_eq!(u.burrow(&["logs", "lossy"]).ok().stdout, "a\nb\n");
}

#[test]
fn the_example_plugin_is_built_installed_and_used() {
    let u = User::new("log_plugin");
    let img = u.pull("busybox");
    let example = repo().join("examples/log-plugin");
    let target = PathBuf::from("/var/tmp/burrow-test/example-plugin-target");
    let built = common::build_wasm(&example.join("Cargo.toml"), &target)
        .unwrap_or_else(|e| panic!("the template builds with one cargo command: {e}"));
    let wasm = built.join("log_lines.wasm");
    let copy = scratch(&u, "plugin").join("lines.wasm");
    std::fs::copy(&wasm, &copy).unwrap();
    // Without a grant and without a terminal, install says what to grant.
    let o = u.burrow(&["plugin", "install", &copy.display().to_string()]);
    o.code(125).one_line_error().stderr_has("--grant log-dir");
    u.burrow(&[
        "plugin",
        "install",
        &copy.display().to_string(),
        "--grant",
        "log-dir",
    ])
    .ok();
    let o = u.burrow(&["plugin", "ls"]);
    assert!(o.ok().stdout.contains("lines"), "{o:#?}");
    u.burrow(&[
        "run",
        "--name",
        "p",
        "--log-driver",
        "lines",
        &img,
        "sh",
        "-c",
        "echo via-plugin",
    ])
    .ok();
    let id = u.field("p", "{{.Id}}");
    let log = u
        .data_dir()
        .join("containers")
        .join(&id)
        .join("logs")
        .join(format!("{id}.log"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with(" stdout via-plugin\n"), "{text:?}");
    // In use: rm refuses until the container is gone; disable stops new containers.
    u.burrow(&["plugin", "rm", "lines"])
        .code(125)
        .stderr_has("in use");
    u.burrow(&["rm", "p"]).ok();
    u.burrow(&["plugin", "disable", "lines"]).ok();
    u.burrow(&["run", "--rm", "--log-driver", "lines", &img, "true"])
        .code(125)
        .stderr_has("disabled");
    u.burrow(&["plugin", "rm", "lines"]).ok();
    assert_eq!(u.burrow(&["plugin", "ls", "-q"]).ok().stdout, "");
}

/// moto (CloudWatch Logs with SigV4 checked), started by tests/run.sh: its address and the
/// directory holding credentials.env.
fn moto() -> (String, PathBuf) {
    (
        common::var("BURROW_TEST_MOTO"),
        PathBuf::from(common::var("BURROW_TEST_MOTO_DIR")),
    )
}

#[test]
fn awslogs_reaches_cloudwatch_with_signed_requests() {
    let (addr, dir) = moto();
    let mut u = User::new("log_aws");
    let img = u.pull("busybox");
    let creds = std::fs::read_to_string(dir.join("credentials.env")).unwrap();
    for line in creds.lines() {
        if let Some((k, v)) = line.split_once('=') {
            u.env.push((k.to_string(), v.to_string()));
        }
    }
    let group = format!("burrow-{}", std::process::id());
    let endpoint = format!("awslogs-endpoint=http://{addr}");
    u.burrow(&[
        "run",
        "--name",
        "aws",
        "--log-driver",
        "awslogs",
        "--log-opt",
        &endpoint,
        "--log-opt",
        &format!("awslogs-group={group}"),
        "--log-opt",
        "awslogs-create-group=true",
        "--log-opt",
        "awslogs-stream=s1",
        &img,
        "sh",
        "-c",
        "echo first; echo second",
    ])
    .ok();
    let venv = Command::new("bash")
        .arg(repo().join("tests/servers/moto.sh"))
        .arg("venv")
        .output()
        .unwrap();
    let python = PathBuf::from(String::from_utf8_lossy(&venv.stdout).trim()).join("bin/python");
    let port = addr.rsplit(':').next().unwrap();
    let o = Command::new(python)
        .arg(repo().join("tests/servers/cw_events.py"))
        .args([&dir.display().to_string(), port, &group, "s1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let messages: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(messages, ["first", "second"], "{o:?}");
    // Dual logging: `logs` reads the local cache.
    assert_eq!(u.burrow(&["logs", "aws"]).ok().stdout, "first\nsecond\n");
    // A wrong secret: moto refuses the signature and the container does not start.
    let mut bad = User::new("log_aws_bad");
    bad.pull("busybox");
    for line in creds.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let v = if k == "AWS_SECRET_ACCESS_KEY" {
                "wrong"
            } else {
                v
            };
            bad.env.push((k.to_string(), v.to_string()));
        }
    }
    let o = bad.burrow(&[
        "run",
        "--rm",
        "--log-driver",
        "awslogs",
        "--log-opt",
        &endpoint,
        "--log-opt",
        &format!("awslogs-group={group}"),
        &img,
        "true",
    ]);
    o.code(125).one_line_error();
}
