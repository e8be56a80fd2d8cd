//! burrow's json-file and syslog bytes against Docker's. The cases of tests/golden/cases.json
//! were run through dockerd 20.10.24 by tests/golden/make.sh; here they run through burrow as
//! the test user, burrow's output goes through the same normalisation (tests/golden/golden.py
//! normalize: container ids, times, pids, hostname) and must equal the golden files byte for
//! byte. Every case runs even when one differs; the failure lists each difference, and
//! burrow's normalised files are left in the target dir for diffing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::User;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Where burrow's normalised outputs are written, to diff against the golden files.
fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("golden");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Case {
    name: String,
    driver: String,
    transport: Option<String>,
    args: Vec<String>,
    script: String,
}

fn cases(driver: &str) -> Vec<(usize, Case)> {
    let text = std::fs::read_to_string(golden_dir().join("cases.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    let s = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    all.as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: s(&c["name"]),
            driver: s(&c["driver"]),
            transport: c.get("transport").map(s),
            args: c["args"].as_array().unwrap().iter().map(s).collect(),
            script: s(&c["script"]),
        })
        .enumerate()
        .filter(|(_, c)| c.driver == driver)
        .collect()
}

fn python() -> Command {
    let mut c = Command::new("python3");
    c.arg(golden_dir().join("golden.py"));
    c
}

/// `golden.py normalize KIND FILE`: the file with what varies between runs replaced.
fn normalize(kind: &str, file: &Path, id: &str, image: &str) -> Vec<u8> {
    let o = python()
        .args(["normalize", kind])
        .arg(file)
        .args(["--id", id, "--image", image])
        .output()
        .expect("python3 runs tests/golden/golden.py");
    assert!(o.status.success(), "golden.py normalize: {o:?}");
    o.stdout
}

/// `run` arguments as golden.py's `run_args` builds them for Docker.
fn run_args(case: &Case, image: &str, address: Option<&str>) -> Vec<String> {
    let mut args = vec!["run".to_string(), "--name".into(), container(case)];
    if let Some(address) = address {
        args.extend([
            "--log-driver".into(),
            "syslog".into(),
            "--log-opt".into(),
            format!("syslog-address={address}"),
        ]);
    }
    args.extend(case.args.iter().cloned());
    args.extend([image.into(), "sh".into(), "-c".into(), case.script.clone()]);
    args
}

fn container(case: &Case) -> String {
    format!("golden-{}", case.name)
}

/// Compares with `NAME` in tests/golden, keeping burrow's bytes beside; the difference, if
/// any, described for the failure message.
fn compare(file: &str, got: &[u8]) -> Option<String> {
    let want = std::fs::read(golden_dir().join(file)).unwrap();
    let kept = out_dir().join(file.replace(".golden", ".burrow"));
    std::fs::write(&kept, got).unwrap();
    (want != got).then(|| describe(file, &want, got, &kept))
}

/// The first differing line of two outputs, around the first differing byte.
fn describe(file: &str, want: &[u8], got: &[u8], kept: &Path) -> String {
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let line = want[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    let start = want[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1)
        .max(at.saturating_sub(100));
    let window = |s: &[u8]| {
        let end = s[start.min(s.len())..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(s.len(), |p| start + p + 1)
            .min(at + 100)
            .min(s.len());
        format!("\"{}\"", s[start.min(s.len())..end].escape_ascii())
    };
    format!(
        "{file}: differs from byte {at} (line {line}; docker {} bytes, burrow {} bytes)\n  docker: {}\n  burrow: {}\n  burrow's whole output: {}",
        want.len(),
        got.len(),
        window(want),
        window(got),
        kept.display()
    )
}

fn inspect(u: &User, name: &str, template: &str) -> String {
    u.burrow(&["inspect", "--format", template, name])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// Runs `burrow ARGS…` as the test user; stdout and stderr as raw bytes (common's `Out`
/// holds them lossily decoded, which would hide invalid UTF-8).
fn burrow_bytes(u: &User, args: &[&str]) -> (i32, Vec<u8>, Vec<u8>) {
    let o = u.command(args).output().unwrap();
    (o.status.code().unwrap_or(-1), o.stdout, o.stderr)
}

fn run_case(u: &User, case: &Case, image: &str, address: Option<&str>) -> Result<String, String> {
    let args = run_args(case, image, address);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = u.burrow(&args);
    if o.code != 0 {
        return Err(format!("{}: burrow {args:?} failed: {o:#?}", case.name));
    }
    Ok(inspect(u, &container(case), "{{.Id}}"))
}

#[test]
fn json_file_bytes_and_logs_output_match_docker() {
    let u = User::new("golden_json");
    let image = u.pull("busybox");
    let scratch = out_dir().join("json-scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut failures = Vec::new();
    for (_, case) in cases("json-file") {
        let id = match run_case(&u, &case, &image, None) {
            Ok(id) => id,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let log = inspect(&u, &container(&case), "{{.LogPath}}");
        let file = format!("{}.json-log.golden", case.name);
        failures.extend(compare(
            &file,
            &normalize("json-log", Path::new(&log), &id, &image),
        ));
        let name = container(&case);
        for (flags, suffix) in [
            (&[][..], "logs"),
            (&["-t", "--details"][..], "logs-t-details"),
        ] {
            let mut args = vec!["logs"];
            args.extend_from_slice(flags);
            args.push(&name);
            let (code, stdout, stderr) = burrow_bytes(&u, &args);
            if code != 0 {
                failures.push(format!(
                    "burrow {args:?} exited {code}: {}",
                    String::from_utf8_lossy(&stderr)
                ));
                continue;
            }
            for (stream, bytes) in [("stdout", stdout), ("stderr", stderr)] {
                let raw = scratch.join(format!("{}.{suffix}.{stream}", case.name));
                std::fs::write(&raw, &bytes).unwrap();
                let file = format!("{}.{suffix}.{stream}.golden", case.name);
                failures.extend(compare(&file, &normalize("logs", &raw, &id, &image)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "burrow's json-file output differs from Docker's in {} place(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// `golden.py listen` (as root), killed on drop.
struct Listener(Child);

impl Listener {
    fn start(transport: &str, target: &str, capture: &Path, tls: &[PathBuf]) -> Listener {
        let mut child = python()
            .args(["listen", transport, target])
            .arg(capture)
            .args(tls)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs tests/golden/golden.py");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(
            line.trim(),
            "listening",
            "golden.py listen {transport} {target}"
        );
        Listener(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A throw-away self-signed certificate for the tcp+tls listener.
fn certificate(dir: &Path) -> Vec<PathBuf> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(ok.success(), "openssl req failed");
    vec![cert, key]
}

/// Ports 25530 and up (tests/logging.rs uses 25514 and 25515): one per case.
const BASE_PORT: usize = 25530;

#[test]
fn syslog_bytes_on_the_wire_match_docker() {
    let u = User::new("golden_syslog");
    let image = u.pull("busybox");
    // Sockets where the test user can reach them.
    let dir = u.data_dir().parent().unwrap().join("golden");
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("chown")
        .arg(format!("{}:", u.name))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let tls = certificate(&dir);
    let mut failures = Vec::new();
    for (index, case) in cases("syslog") {
        let transport = case
            .transport
            .clone()
            .expect("syslog cases name a transport");
        let (address, target) = match transport.as_str() {
            "unix" | "unixgram" => {
                let path = dir
                    .join(format!("{}.sock", case.name))
                    .display()
                    .to_string();
                (format!("{transport}://{path}"), path)
            }
            _ => {
                let target = format!("127.0.0.1:{}", BASE_PORT + index);
                let scheme = if transport == "tls" {
                    "tcp+tls"
                } else {
                    &transport
                };
                (format!("{scheme}://{target}"), target)
            }
        };
        let capture = dir.join(format!("{}.capture", case.name));
        let certs = if transport == "tls" { &tls[..] } else { &[] };
        let _listener = Listener::start(&transport, &target, &capture, certs);
        let id = match run_case(&u, &case, &image, Some(&address)) {
            Ok(id) => id,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        // Datagrams and stream bytes arrive a moment after `run` returns.
        let file = format!("{}.syslog.golden", case.name);
        let want = std::fs::read(golden_dir().join(&file)).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        let got = loop {
            let got = normalize("syslog", &capture, &id, &image);
            if got == want || Instant::now() > until {
                break got;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        // Nothing more may follow what matched.
        std::thread::sleep(Duration::from_millis(500));
        let got = if got == want {
            normalize("syslog", &capture, &id, &image)
        } else {
            got
        };
        failures.extend(compare(&file, &got));
    }
    assert!(
        failures.is_empty(),
        "burrow's syslog output differs from Docker's in {} place(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
