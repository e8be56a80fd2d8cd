#!/usr/bin/env python3
"""A Fluentd forward-protocol (v1) receiver for burrow's fluentd driver tests.

Debian ships no fluentd, so this stands in for one (see tests/servers/test_fluent_recv.py,
which checks it against the real python3-fluent-logger client). It accepts the four
event modes of https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1:

  Message                  [tag, time, record, option?]
  Forward                  [tag, [[time, record], ...], option?]
  PackedForward            [tag, bin|str (a stream of [time, record]), option?]
  CompressedPackedForward  the same, gzip'ed, with option {"compressed": "gzip"}

`time` is an integer, a float, or EventTime (ext type 0: BE u32 seconds, BE u32 nanos).
When an option carries "chunk", it answers {"ack": chunk} once the whole entry is
written out (unless --no-ack). Each event becomes one JSON line in --out:

  {"mode": "Message", "tag": ..., "time": 1795333798 | 1.5 | [sec, nsec],
   "record": {...}, "option": {...} | null}

Strings are decoded as UTF-8 (invalid bytes kept as surrogate escapes, "\\udcXX" in JSON).

Failure modes for tests: --close-on-accept closes every connection as soon as it is
accepted; --drop-after N closes a connection, without acking, once N entries arrived on
it; --no-ack never answers chunks. Once listening it prints "READY <port-or-path>" on
stdout and, with --ready-file, writes the same there. SIGTERM/SIGINT stop it cleanly.

Usage: fluent_recv.py --out FILE (--port N [--host 127.0.0.1] | --socket PATH)
       [--no-ack] [--close-on-accept] [--drop-after N] [--ready-file FILE]
"""

import argparse
import gzip
import json
import os
import signal
import socket
import socketserver
import sys
import threading

try:
    import msgpack
except ImportError:  # a pyenv/venv python3 first on PATH: use Debian's, which has the packages
    DEBIAN_PYTHON = "/usr/bin/python3"
    if os.path.exists(DEBIAN_PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(
            DEBIAN_PYTHON):
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON, *sys.argv])
    raise


def decode_time(t):
    if isinstance(t, msgpack.ExtType):
        if t.code != 0 or len(t.data) != 8:
            raise ValueError(f"unexpected ext type {t.code} of {len(t.data)} bytes as time")
        return [int.from_bytes(t.data[:4], "big"), int.from_bytes(t.data[4:], "big")]
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise ValueError(f"unexpected time {t!r}")
    return t


def unpacker():
    return msgpack.Unpacker(raw=False, unicode_errors="surrogateescape",
                            strict_map_key=False, max_buffer_size=64 * 1024 * 1024)


def as_bytes(entries):
    if isinstance(entries, str):
        return entries.encode("utf-8", "surrogateescape")
    return entries


def events(entry):
    """(mode, [(time, record)], option) for one top-level entry."""
    if not isinstance(entry, (list, tuple)) or len(entry) < 2 or not isinstance(entry[0], str):
        raise ValueError(f"not a forward-protocol entry: {entry!r:.200}")
    tag, second = entry[0], entry[1]
    # ExtType (EventTime) is a namedtuple: test for it before arrays.
    if isinstance(second, (list, tuple)) and not isinstance(second, msgpack.ExtType):
        option = entry[2] if len(entry) > 2 else None
        return "Forward", tag, [(e[0], e[1]) for e in second], option
    if isinstance(second, (bytes, str)):
        option = entry[2] if len(entry) > 2 else None
        data = as_bytes(second)
        mode = "PackedForward"
        if isinstance(option, dict) and option.get("compressed") == "gzip":
            data = gzip.decompress(data)
            mode = "CompressedPackedForward"
        up = unpacker()
        up.feed(data)
        return mode, tag, [(e[0], e[1]) for e in up], option
    if len(entry) < 3:
        raise ValueError(f"Message mode needs a record: {entry!r:.200}")
    option = entry[3] if len(entry) > 3 else None
    return "Message", tag, [(second, entry[2])], option


class Receiver:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.out = open(args.out, "a", encoding="utf-8")

    def record(self, mode, tag, evs, option):
        with self.lock:
            for t, rec in evs:
                line = {"mode": mode, "tag": tag, "time": decode_time(t),
                        "record": rec, "option": option}
                self.out.write(json.dumps(line) + "\n")
            self.out.flush()

    def handle(self, sock):
        if self.args.close_on_accept:
            return
        up = unpacker()
        seen = 0
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            up.feed(data)
            for entry in up:
                try:
                    mode, tag, evs, option = events(entry)
                except (ValueError, TypeError, IndexError, OSError) as e:
                    print(f"bad entry, closing: {e}", file=sys.stderr, flush=True)
                    return
                seen += 1
                if self.args.drop_after and seen >= self.args.drop_after:
                    return
                self.record(mode, tag, evs, option)
                if (not self.args.no_ack and isinstance(option, dict)
                        and option.get("chunk") is not None):
                    try:
                        sock.sendall(msgpack.packb({"ack": option["chunk"]}))
                    except OSError:
                        return


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int, help="tcp port (0 picks a free one)")
    where.add_argument("--socket", help="unix stream socket path")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--out", required=True, help="file that receives one JSON line per event")
    p.add_argument("--no-ack", action="store_true")
    p.add_argument("--close-on-accept", action="store_true")
    p.add_argument("--drop-after", type=int, default=0)
    p.add_argument("--ready-file")
    args = p.parse_args()

    recv = Receiver(args)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            recv.handle(self.request)

    if args.socket:
        if os.path.exists(args.socket):
            os.unlink(args.socket)
        server_cls = type("S", (socketserver.ThreadingMixIn, socketserver.UnixStreamServer),
                          {"daemon_threads": True})
        server = server_cls(args.socket, Handler)
        where = args.socket
    else:
        server_cls = type("S", (socketserver.ThreadingMixIn, socketserver.TCPServer),
                          {"daemon_threads": True, "allow_reuse_address": True})
        server = server_cls((args.host, args.port), Handler)
        where = str(server.server_address[1])

    def stop(_sig, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(where + "\n")
        os.replace(tmp, args.ready_file)
    print(f"READY {where}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        if args.socket and os.path.exists(args.socket):
            os.unlink(args.socket)


if __name__ == "__main__":
    main()
