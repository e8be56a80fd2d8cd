#!/usr/bin/env python3
"""Checks fluent_recv.py against the real python3-fluent-logger client (Message mode, int
and EventTime, tcp and unix) and against hand-packed Forward, PackedForward and
CompressedPackedForward entries with acks, plus its failure modes.

    python3 tests/servers/test_fluent_recv.py

Needs the Debian packages python3-msgpack and python3-fluent-logger.
"""

import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

try:
    import msgpack
except ImportError:  # a pyenv/venv python3 first on PATH: use Debian's, which has the packages
    DEBIAN_PYTHON = "/usr/bin/python3"
    if os.path.exists(DEBIAN_PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(
            DEBIAN_PYTHON):
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON, *sys.argv])
    raise
from fluent import sender as fluent_sender

HERE = os.path.dirname(os.path.abspath(__file__))
RECV = os.path.join(HERE, "fluent_recv.py")
T = 1795333798  # the dockerd capture's second


class Server:
    """fluent_recv.py in a subprocess, on a free tcp port or a unix socket."""

    def __init__(self, unix=False, extra=()):
        self.dir = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.dir.name, "events.jsonl")
        ready = os.path.join(self.dir.name, "ready")
        where = (["--socket", os.path.join(self.dir.name, "fwd.sock")] if unix
                 else ["--port", "0"])
        self.proc = subprocess.Popen(
            [sys.executable, RECV, "--out", self.out, "--ready-file", ready, *where, *extra],
            stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not os.path.exists(ready):
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("fluent_recv.py did not become ready")
            time.sleep(0.02)
        with open(ready) as f:
            self.where = f.read().strip()
        self.unix = unix

    def connect(self):
        if self.unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.where)
        else:
            s = socket.create_connection(("127.0.0.1", int(self.where)))
        s.settimeout(3)
        return s

    def sender(self, tag, **kw):
        if self.unix:
            return fluent_sender.FluentSender(tag, host="unix://" + self.where, **kw)
        return fluent_sender.FluentSender(tag, host="127.0.0.1", port=int(self.where), **kw)

    def events(self, n, timeout=5.0):
        deadline = time.time() + timeout
        while True:
            lines = []
            if os.path.exists(self.out):
                with open(self.out, encoding="utf-8") as f:
                    lines = [json.loads(line) for line in f if line.strip()]
            if len(lines) >= n or time.time() > deadline:
                return lines
            time.sleep(0.02)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.dir.cleanup()


def read_ack(sock):
    up = msgpack.Unpacker(raw=False)
    while True:
        data = sock.recv(4096)
        if not data:
            return None
        up.feed(data)
        for obj in up:
            return obj


class RealClient(unittest.TestCase):
    def test_message_mode_int_time_over_tcp(self):
        srv = Server()
        try:
            s = srv.sender("app")
            self.assertTrue(s.emit_with_time("web", T, {"log": "hello", "n": 1}))
            self.assertTrue(s.emit_with_time(None, T + 1, {"log": "ünï"}))
            s.close()
            got = srv.events(2)
            self.assertEqual(got, [
                {"mode": "Message", "tag": "app.web", "time": T,
                 "record": {"log": "hello", "n": 1}, "option": None},
                {"mode": "Message", "tag": "app", "time": T + 1,
                 "record": {"log": "ünï"}, "option": None},
            ])
        finally:
            srv.stop()

    def test_message_mode_event_time_over_unix_socket(self):
        srv = Server(unix=True)
        try:
            s = srv.sender("app", nanosecond_precision=True)
            self.assertTrue(s.emit_with_time("x", T + 0.5, {"log": "sub"}))
            s.close()
            got = srv.events(1)
            self.assertEqual(len(got), 1, got)
            self.assertEqual(got[0]["time"], [T, 500000000])
            self.assertEqual(got[0]["record"], {"log": "sub"})
        finally:
            srv.stop()

    def test_client_sees_a_connection_the_server_closes(self):
        srv = Server(extra=["--close-on-accept"])
        try:
            s = srv.sender("app")
            results = []
            for _ in range(3):
                results.append(s.emit_with_time(None, T, {"log": "lost"}))
                time.sleep(0.2)
            s.close()
            self.assertIn(False, results)
            self.assertEqual(srv.events(1, timeout=0.5), [])
        finally:
            srv.stop()


class Modes(unittest.TestCase):
    def setUp(self):
        self.srv = Server()

    def tearDown(self):
        self.srv.stop()

    def test_dockers_message_with_event_time_and_ack(self):
        et = msgpack.ExtType(0, T.to_bytes(4, "big") + (906742166).to_bytes(4, "big"))
        rec = {"container_id": "c" * 64, "container_name": "/fl1", "source": "stdout",
               "log": "hello"}
        chunk = "pp4CawAAAAAQMYuWUh41/Q=="
        with self.srv.connect() as s:
            s.sendall(msgpack.packb(["docker.fl1", et, rec, {"chunk": chunk}]))
            self.assertEqual(read_ack(s), {"ack": chunk})
            s.sendall(msgpack.packb(["docker.fl1", T, rec, {}]))
        got = self.srv.events(2)
        self.assertEqual(got[0], {"mode": "Message", "tag": "docker.fl1",
                                  "time": [T, 906742166], "record": rec,
                                  "option": {"chunk": chunk}})
        self.assertEqual(got[1]["time"], T)
        self.assertEqual(got[1]["option"], {})

    def test_forward_mode(self):
        with self.srv.connect() as s:
            s.sendall(msgpack.packb(["fw", [[T, {"a": "1"}], [T + 1, {"a": "2"}]],
                                     {"chunk": "c1"}]))
            self.assertEqual(read_ack(s), {"ack": "c1"})
        got = self.srv.events(2)
        self.assertEqual([(g["mode"], g["time"], g["record"]) for g in got],
                         [("Forward", T, {"a": "1"}), ("Forward", T + 1, {"a": "2"})])

    def test_packed_and_compressed_packed_forward(self):
        stream = msgpack.packb([T, {"p": "1"}]) + msgpack.packb([T + 2, {"p": "2"}])
        gz = gzip.compress(msgpack.packb([T, {"z": "1"}])) + gzip.compress(
            msgpack.packb([T, {"z": "2"}]))
        with self.srv.connect() as s:
            s.sendall(msgpack.packb(["pf", stream, {"size": 2, "chunk": "c2"}],
                                    use_bin_type=True))
            self.assertEqual(read_ack(s), {"ack": "c2"})
            s.sendall(msgpack.packb(["pf-str", stream], use_bin_type=False))
            s.sendall(msgpack.packb(["cpf", gz, {"compressed": "gzip", "chunk": "c3"}]))
            self.assertEqual(read_ack(s), {"ack": "c3"})
        got = self.srv.events(6)
        self.assertEqual([(g["mode"], g["tag"], g["record"]) for g in got], [
            ("PackedForward", "pf", {"p": "1"}),
            ("PackedForward", "pf", {"p": "2"}),
            ("PackedForward", "pf-str", {"p": "1"}),
            ("PackedForward", "pf-str", {"p": "2"}),
            ("CompressedPackedForward", "cpf", {"z": "1"}),
            ("CompressedPackedForward", "cpf", {"z": "2"}),
        ])

    def test_entries_split_across_reads_are_reassembled(self):
        data = msgpack.packb(["split", T, {"log": "x" * 100000}, {"chunk": "c4"}])
        with self.srv.connect() as s:
            for i in range(0, len(data), 7000):
                s.sendall(data[i:i + 7000])
                time.sleep(0.001)
            self.assertEqual(read_ack(s), {"ack": "c4"})
        self.assertEqual(len(self.srv.events(1)[0]["record"]["log"]), 100000)


class FailureModes(unittest.TestCase):
    def test_no_ack(self):
        srv = Server(extra=["--no-ack"])
        try:
            with srv.connect() as s:
                s.sendall(msgpack.packb(["t", T, {"a": "b"}, {"chunk": "c"}]))
                s.settimeout(0.5)
                with self.assertRaises(socket.timeout):
                    s.recv(10)
            self.assertEqual(len(srv.events(1)), 1)
        finally:
            srv.stop()

    def test_drop_after(self):
        srv = Server(extra=["--drop-after", "2"])
        try:
            with srv.connect() as s:
                s.sendall(msgpack.packb(["t", T, {"n": "1"}, {"chunk": "a"}]))
                self.assertEqual(read_ack(s), {"ack": "a"})
                s.sendall(msgpack.packb(["t", T, {"n": "2"}, {"chunk": "b"}]))
                self.assertIsNone(read_ack(s), "closed without acking the 2nd entry")
            self.assertEqual([g["record"] for g in srv.events(2, timeout=0.5)], [{"n": "1"}])
        finally:
            srv.stop()

    def test_close_on_accept(self):
        srv = Server(extra=["--close-on-accept"])
        try:
            with srv.connect() as s:
                self.assertEqual(s.recv(10), b"")
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
