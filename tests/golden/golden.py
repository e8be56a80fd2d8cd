#!/usr/bin/env python3
"""Golden log bytes from a real Docker, shared by tests/golden/make.sh and tests/golden.rs.

    golden.py docker OUTDIR
        Runs every case of cases.json through `docker run` (the dockerd of $DOCKER_HOST, the
        client named by $DOCKER, image $GOLDEN_IMAGE) and writes OUTDIR/*.golden and
        OUTDIR/README.md. Called by make.sh, which starts and stops that dockerd.

    golden.py listen PROTO ADDR CAPTURE [CERT KEY]
        A raw syslog receiver: PROTO is udp, tcp, tls, unix or unixgram; ADDR is HOST:PORT or
        a socket path. Every datagram and every stream connection is kept as one record, with
        its bytes exactly as received, in CAPTURE (rewritten atomically after each receive).
        Prints "listening" once bound; runs until SIGTERM.

    golden.py normalize KIND FILE --id ID --image REF [--hostname H]
        Prints FILE with what must vary between runs replaced by placeholders. KIND:
        json-log (a json-file log), logs (`logs` output), syslog (a CAPTURE).

Placeholders (normalize): <FULLID> and <ID> the container id (64 and 12 characters); <IMAGE>
the image reference and <IMAGE-QUERY-ESCAPED> it as url.QueryEscape writes it; json-file
"time":"<TIME>" (an RFC 3339 UTC time with nanoseconds, trailing zeros trimmed);
`logs -t` <TIMESTAMP> (RFC 3339 UTC, exactly nine fractional digits); syslog <STAMP> (Go's
time.Stamp, "Jan _2 15:04:05"), <RFC3339> (seconds, then Z or +hh:mm), <RFC3339-MICRO>
(exactly six fractional digits), <HOSTNAME> (this machine's name, where the format puts the
hostname), <PID> (where the format puts a pid), <OCTETS> (an RFC 5425 length prefix that
equals the length of the message after it). Anything that does not have the expected shape
is left as it is, so a difference shows.

A syslog capture is written as records: "==> datagram <==" or "==> stream <==" on a line of
its own, then the bytes received; "\\ no newline at end of record" follows a record whose
bytes do not end in a newline.
"""

import json
import os
import re
import shlex
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))


def load_cases():
    with open(os.path.join(HERE, "cases.json"), encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------- normalisation

JSON_TIME = re.compile(rb',"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{0,8}[1-9])?Z"\}$')
FIXED_TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")
STAMP = rb"[A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d"
UNIX_HEAD = re.compile(rb"^<(\d{1,3})>(" + STAMP + rb") (\S+)\[(\d+)\]: ")
RFC3164_HEAD = re.compile(rb"^<(\d{1,3})>(" + STAMP + rb") (\S+) (\S+)\[(\d+)\]: ")
RFC5424_HEAD = re.compile(rb"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) - ")
RFC3339 = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)$")
RFC3339_MICRO = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(?:Z|[+-]\d\d:\d\d)$")
OCTETS = re.compile(rb"^([1-9]\d*) ")


def replace_ids(data, full_id, image):
    data = data.replace(full_id.encode(), b"<FULLID>")
    data = data.replace(full_id[:12].encode(), b"<ID>")
    data = data.replace(image.encode(), b"<IMAGE>")
    data = data.replace(urllib.parse.quote_plus(image).encode(), b"<IMAGE-QUERY-ESCAPED>")
    return data


def normalize_json_log(data):
    lines = data.split(b"\n")
    return b"\n".join(JSON_TIME.sub(b',"time":"<TIME>"}', l) for l in lines)


def normalize_logs(data):
    return FIXED_TIME.sub(b"<TIMESTAMP> ", data)


def normalize_message(msg, hostname):
    """One syslog message, in whichever of Docker's four formats it has."""
    host = hostname.encode()
    m = RFC5424_HEAD.match(msg)
    if m:
        pri, ts, hn, app, pid, msgid = m.groups()
        if RFC3339_MICRO.match(ts):
            ts = b"<RFC3339-MICRO>"
        elif RFC3339.match(ts):
            ts = b"<RFC3339>"
        hn = b"<HOSTNAME>" if hn == host else hn
        pid = b"<PID>" if pid.isdigit() else pid
        head = b"<%s>1 %s %s %s %s %s - " % (pri, ts, hn, app, pid, msgid)
        return head + msg[m.end() :]
    m = RFC3164_HEAD.match(msg)
    if m and m.group(3) == host:
        pri, _, _, tag, _ = m.groups()
        return b"<%s><STAMP> <HOSTNAME> %s[<PID>]: " % (pri, tag) + msg[m.end() :]
    m = UNIX_HEAD.match(msg)
    if m:
        pri, _, tag, _ = m.groups()
        return b"<%s><STAMP> %s[<PID>]: " % (pri, tag) + msg[m.end() :]
    return msg


def normalize_stream(data, hostname):
    """Octet-counted frames when the stream starts with a length, else newline-framed."""
    out = []
    if OCTETS.match(data):
        while data:
            m = OCTETS.match(data)
            n = int(m.group(1)) if m else -1
            if not m or len(data) < m.end() + n:
                out.append(data)  # not a whole frame: as received
                break
            msg = data[m.end() : m.end() + n]
            out.append(b"<OCTETS> " + normalize_message(msg, hostname))
            data = data[m.end() + n :]
        return b"".join(out)
    for line in data.split(b"\n"):
        out.append(normalize_message(line, hostname) if line else line)
    return b"\n".join(out)


def read_records(path):
    """The records of a capture: (kind, bytes), kind b"D" (datagram) or b"S" (stream)."""
    with open(path, "rb") as f:
        raw = f.read()
    records, i = [], 0
    while i + 9 <= len(raw):
        kind, n = raw[i : i + 1], struct.unpack(">Q", raw[i + 1 : i + 9])[0]
        records.append((kind, raw[i + 9 : i + 9 + n]))
        i += 9 + n
    return records


def normalize_syslog(path, hostname):
    out = []
    for kind, data in read_records(path):
        if kind == b"D":
            out.append(b"==> datagram <==\n" + normalize_message(data, hostname))
        else:
            out.append(b"==> stream <==\n" + normalize_stream(data, hostname))
        if not out[-1].endswith(b"\n"):
            out.append(b"\n\\ no newline at end of record\n")
    return b"".join(out)


def normalize(kind, path, full_id, image, hostname):
    if kind == "syslog":
        data = normalize_syslog(path, hostname)
    else:
        with open(path, "rb") as f:
            data = f.read()
        data = normalize_json_log(data) if kind == "json-log" else normalize_logs(data)
    return replace_ids(data, full_id, image)


# ---------------------------------------------------------------- the listener


class Capture:
    def __init__(self, path):
        self.path = path
        self.records = []  # [kind, bytearray]
        self.lock = threading.Lock()
        self.save()

    def add(self, kind):
        with self.lock:
            self.records.append([kind, bytearray()])
            return len(self.records) - 1

    def append(self, index, data):
        with self.lock:
            self.records[index][1].extend(data)
            self.save()

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            for kind, data in self.records:
                f.write(kind + struct.pack(">Q", len(data)) + bytes(data))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)


def serve_stream(capture, conn):
    index = capture.add(b"S")
    with conn:
        while True:
            try:
                data = conn.recv(65536)
            except (ssl.SSLError, OSError):
                break
            if not data:
                break
            capture.append(index, data)


def listen(proto, addr, out, cert=None, key=None):
    capture = Capture(out)
    if proto in ("udp", "tcp", "tls"):
        host, port = addr.rsplit(":", 1)
        family, target = socket.AF_INET, (host, int(port))
    else:
        family, target = socket.AF_UNIX, addr
        if os.path.exists(addr):
            os.unlink(addr)
    kind = socket.SOCK_DGRAM if proto in ("udp", "unixgram") else socket.SOCK_STREAM
    sock = socket.socket(family, kind)
    if family == socket.AF_INET:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(target)
    if family == socket.AF_UNIX:
        os.chmod(addr, 0o666)  # the test user must be able to connect
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("listening", flush=True)
    if kind == socket.SOCK_DGRAM:
        while True:
            data = sock.recv(65536)
            capture.append(capture.add(b"D"), data)
    sock.listen(16)
    context = None
    if proto == "tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    while True:
        conn, _ = sock.accept()
        if context is not None:
            try:
                conn = context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                continue
        threading.Thread(target=serve_stream, args=(capture, conn), daemon=True).start()


# ---------------------------------------------------------------- docker


def syslog_address(case, port, sockdir):
    transport = case.get("transport")
    if transport is None:
        return None
    if transport in ("unix", "unixgram"):
        return "%s://%s/%s.sock" % (transport, sockdir, case["name"])
    scheme = "tcp+tls" if transport == "tls" else transport
    return "%s://127.0.0.1:%d" % (scheme, port)


def run_args(case, image, address, extra=()):
    """`run` arguments for a case; the test builds the same list for burrow."""
    args = ["run", "--name", "golden-" + case["name"], *extra]
    if case["driver"] == "syslog":
        args += ["--log-driver", "syslog", "--log-opt", "syslog-address=" + address]
    return args + case["args"] + [image, "sh", "-c", case["script"]]


def make_cert(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return cert, key


def docker_main(outdir):
    docker = os.environ.get("DOCKER", "docker")
    image = os.environ["GOLDEN_IMAGE"]
    workdir = os.environ["GOLDEN_WORKDIR"]
    port = int(os.environ.get("GOLDEN_PORT", "25560"))
    hostname = socket.gethostname()
    version = subprocess.run(
        [docker, "version", "--format", "client {{.Client.Version}}, server {{.Server.Version}}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    cert, key = make_cert(workdir)

    def write(name, data):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)

    readme = [README_HEAD.format(version=version, image=image)]
    for i, case in enumerate(load_cases()):
        name = case["name"]
        cname = "golden-" + name
        subprocess.run([docker, "rm", "-f", cname], capture_output=True)
        address = syslog_address(case, port + i, workdir)
        listener = None
        capture = os.path.join(workdir, name + ".capture")
        if case["driver"] == "syslog":
            target = address.split("://", 1)[1]
            cmd = [sys.executable, __file__, "listen", case["transport"], target, capture]
            if case["transport"] == "tls":
                cmd += [cert, key]
            listener = subprocess.Popen(cmd, stdout=subprocess.PIPE)
            assert listener.stdout.readline().strip() == b"listening"
        argv = [docker] + run_args(case, image, address, ["--network", "none"])
        run = subprocess.run(argv, capture_output=True)
        if run.returncode != 0:
            sys.exit("%s: %s" % (shlex.join(argv), run.stderr.decode(errors="replace")))
        full_id = subprocess.run(
            [docker, "inspect", "--format", "{{.Id}}", cname],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        readme.append("## %s\n\n%s.\n\n```\n%s\n```\n" % (name, case["about"], shlex.join(argv)))
        if listener is not None:
            time.sleep(1.5)
            listener.terminate()
            listener.wait()
            write(name + ".syslog.golden", normalize("syslog", capture, full_id, image, hostname))
            readme.append("`%s.syslog.golden`: what the listener received.\n" % name)
        else:
            path = subprocess.run(
                [docker, "inspect", "--format", "{{.LogPath}}", cname],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
            write(name + ".json-log.golden", normalize("json-log", path, full_id, image, hostname))
            files = ["%s.json-log.golden" % name]
            for flags, suffix in (([], "logs"), (["-t", "--details"], "logs-t-details")):
                logs = subprocess.run([docker, "logs", *flags, cname], capture_output=True)
                for stream, data in (("stdout", logs.stdout), ("stderr", logs.stderr)):
                    tmp = os.path.join(workdir, "logs.tmp")
                    with open(tmp, "wb") as f:
                        f.write(data)
                    file = "%s.%s.%s.golden" % (name, suffix, stream)
                    write(file, normalize("logs", tmp, full_id, image, hostname))
                    files.append(file)
            readme.append(
                "`%s` (the log file), then the stdout and stderr of `docker logs %s` and "
                "`docker logs -t --details %s`.\n" % (files[0], cname, cname)
            )
        subprocess.run([docker, "rm", "-f", cname], capture_output=True, check=True)
    with open(os.path.join(outdir, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(readme))


README_HEAD = """\
# Golden log bytes from Docker

Generated by `tests/golden/make.sh` (do not edit by hand) with Docker {version}
(Debian's docker.io), dockerd started by make.sh with its own data root and socket
(DOCKER_HOST=unix:///var/tmp/golden-docker.sock for the commands below), image `{image}` imported from the host's busybox-static. tests/golden.rs runs the same
cases (`cases.json`) through burrow and compares its bytes with these files after the same
normalisation (`golden.py normalize`; the placeholders are described at the top of
golden.py). Syslog cases were received by `golden.py listen` on 127.0.0.1 (ports from
25560 here, from 25530 in the test) or on a socket in a scratch directory; the tcp+tls
listener uses a throw-away self-signed certificate. `--network none` is given to Docker
only (make.sh starts dockerd without a bridge); it does not change what is logged.

Each case, with the exact command that produced it:
"""


def main(argv):
    if len(argv) >= 2 and argv[1] == "docker" and len(argv) == 3:
        docker_main(argv[2])
    elif len(argv) >= 5 and argv[1] == "listen":
        listen(argv[2], argv[3], argv[4], *argv[5:7])
    elif len(argv) >= 4 and argv[1] == "normalize":
        opts = dict(zip(argv[4::2], argv[5::2]))
        sys.stdout.buffer.write(
            normalize(
                argv[2], argv[3], opts["--id"], opts["--image"],
                opts.get("--hostname", socket.gethostname()),
            )
        )
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
