"""Shared pieces of the hostile device-side peers: outbound connect, status markers, SIGTERM, NETCONF framing.

Nothing here reads or prints key material; markers are plain words with optional details.
"""
import argparse
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
import time

BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
EOM = b"]]>]]>"
NOTIF_CAPABILITIES = [
    "urn:ietf:params:netconf:capability:notification:1.0",
    "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
    "?module=ietf-netconf-notifications&amp;revision=2012-02-06",
]


class Status:
    """Progress markers, one per line: appended to --status FILE (flushed at once) and echoed to stderr."""

    def __init__(self, path):
        self._lock = threading.Lock()
        self._file = open(path, "a", buffering=1) if path else None
        self._start = time.monotonic()

    def mark(self, marker, detail=""):
        line = marker + (" " + detail if detail else "")
        with self._lock:
            if self._file:
                self._file.write(line + "\n")
                self._file.flush()
            sys.stderr.write("[%8.3f %d] %s\n" % (time.monotonic() - self._start, os.getpid(), line))
            sys.stderr.flush()


def add_connect_arguments(parser):
    parser.add_argument("--connect", required=True, metavar="HOST:PORT", help="the station's call-home endpoint")
    parser.add_argument("--source", default=None, metavar="ADDR", help="bind this local address first (127.3.0.1)")
    parser.add_argument("--status", default=None, metavar="FILE", help="append progress markers to FILE")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline of the SSH/TLS handshake (seconds)")


def split_host_port(text):
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit():
        raise SystemExit("--connect wants HOST:PORT or [V6]:PORT, not %r" % text)
    return host, int(port)


def connect_out(target, source=None, rcvbuf=None, timeout=10.0):
    """A TCP connection to the station, optionally from a chosen source address; blocking, Nagle off."""
    host, port = split_host_port(target)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source:
        sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect((host, port))
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


TCP_ESTABLISHED = 1


def tcp_state(sock):
    """The kernel's TCP state of `sock` (TCP_INFO tcpi_state), without reading from it; None when unknown."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        return info[0]
    except OSError:
        return None


def wait_until_tcp_closed(sock, poll=0.1):
    """Blocks until the station closes or resets the connection, reading nothing (never-read peers)."""
    while tcp_state(sock) == TCP_ESTABLISHED:
        time.sleep(poll)


def install_sigterm(status):
    """SIGTERM/SIGINT: one marker, then exit 0 at once (threads of paramiko included)."""

    def handler(signum, _frame):
        status.mark("terminated", signal.Signals(signum).name)
        os._exit(0)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def hello(session_id=1, base11=True, notifications=False):
    caps = [BASE_10] + ([BASE_11] if base11 else []) + (NOTIF_CAPABILITIES if notifications else [])
    body = "".join("<capability>%s</capability>" % c for c in caps)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>%s</capabilities>'
        "<session-id>%d</session-id></hello>" % (body, session_id)
    ).encode() + EOM


class Framer:
    """RFC 6242 message framing: end-of-message (]]>]]>) until both sides said base:1.1, then chunked."""

    def __init__(self):
        self.chunked = False
        self._buf = b""
        self._msg = b""

    def frame(self, payload):
        if isinstance(payload, str):
            payload = payload.encode()
        if not self.chunked:
            return payload + EOM
        return b"\n#%d\n" % len(payload) + payload + b"\n##\n"

    def feed(self, data):
        """Bytes from the station in, whole messages out."""
        self._buf += data
        out = []
        while True:
            if not self.chunked:
                i = self._buf.find(EOM)
                if i < 0:
                    return out
                out.append(self._buf[:i])
                self._buf = self._buf[i + len(EOM):]
                continue
            m = re.match(rb"\n#(#|[1-9][0-9]*)\n", self._buf)
            if not m:
                if len(self._buf) > 16 and not self._buf.startswith(b"\n#"):
                    raise ValueError("bad chunk header %r" % self._buf[:16])
                return out
            if m.group(1) == b"#":
                out.append(self._msg)
                self._msg = b""
                self._buf = self._buf[m.end():]
                continue
            n = int(m.group(1))
            if len(self._buf) < m.end() + n:
                return out
            self._msg += self._buf[m.end(): m.end() + n]
            self._buf = self._buf[m.end() + n:]


def message_id(msg):
    m = re.search(rb'message-id="([^"]*)"', msg)
    return m.group(1).decode() if m else None


def ok_reply(msg_id):
    return '<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="%s"><ok/></rpc-reply>' % msg_id


_seq = 0


def notification():
    """A netconf-session-start (ietf-netconf-notifications): a notification the station can parse."""
    global _seq
    _seq += 1
    t = time.gmtime()
    return (
        '<notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">'
        "<eventTime>%s</eventTime>"
        '<netconf-session-start xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-notifications">'
        "<username>hostile</username><session-id>%d</session-id></netconf-session-start></notification>"
        % (time.strftime("%Y-%m-%dT%H:%M:%SZ", t), 1 + _seq % 4000000000)
    )


class NetconfDevice:
    """The NETCONF side of a device on an established stream (a paramiko channel or an SSL socket).

    `stream` has send(bytes) (all of it, blocking), recv(n, timeout) -> bytes | b"" (EOF) | None (timeout).
    """

    def __init__(self, stream, status, base11=True, notifications=False):
        self.stream = stream
        self.status = status
        self.base11 = base11
        self.notifications = notifications
        self.framer = Framer()
        self.pending = []  # whole messages received and not handled yet
        self.closed = False

    def send_hello(self):
        self.stream.send(hello(base11=self.base11, notifications=self.notifications))
        self.status.mark("hello-sent")

    def read_message(self, timeout=None):
        """The next whole message; None on timeout; sets .closed on EOF."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            data = self.stream.recv(65536, left if left is not None else 1.0)
            if data is None:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            if data == b"":
                self.closed = True
                return None
            self.pending.extend(self.framer.feed(data))
        return self.pending.pop(0)

    def receive_hello(self, timeout=None):
        msg = self.read_message(timeout)
        if msg is None:
            return False
        station11 = BASE_11.encode() in msg
        self.framer.chunked = self.base11 and station11
        # What came in the same read as the hello is already buffered, in the framing just agreed: a station may
        # send its first <rpc> right behind its <hello>, and no more bytes may follow to make feed() look again.
        self.pending.extend(self.framer.feed(b""))
        self.status.mark("hello-received", "base:1.1" if self.framer.chunked else "base:1.0")
        return True

    def send(self, payload):
        self.stream.send(self.framer.frame(payload))

    def serve(self, answer=True):
        """Reads until EOF; answers RPCs (close-session: ok, then returns) unless answer is False."""
        while not self.closed:
            msg = self.read_message()
            if msg is None:
                continue
            mid = message_id(msg)
            if b"close-session" in msg:
                self.status.mark("close-session-received")
                if not answer:
                    self.status.mark("close-session-ignored")
                    continue
                self.send(ok_reply(mid))
                self.status.mark("close-session-answered")
                return
            self.status.mark("rpc-received")
            if answer:
                self.send(ok_reply(mid))

    def read_until_rpc(self):
        """Reads until the first <rpc> other than <close-session> (marker rpc-received); False on EOF first."""
        while not self.closed:
            msg = self.read_message()
            if msg is None:
                continue
            if b"close-session" in msg:
                self.status.mark("close-session-received")
                continue
            self.status.mark("rpc-received")
            self.last_rpc = msg
            return True
        return False

    def drain(self):
        """Reads and discards whatever is there right now; records a <close-session> but does not answer."""
        while True:
            data = self.stream.recv(65536, 0.0)
            if data is None:
                return
            if data == b"":
                self.closed = True
                return
            for msg in self.framer.feed(data):
                if b"close-session" in msg:
                    self.status.mark("close-session-received")

    def discard_forever(self):
        """Reads and throws away everything until EOF, answering nothing."""
        while not self.closed:
            data = self.stream.recv(65536, 1.0)
            if data == b"":
                self.closed = True
            elif data:
                try:
                    for msg in self.framer.feed(data):
                        if b"close-session" in msg:
                            self.status.mark("close-session-received")
                except ValueError:
                    pass

    # --- the hostile behaviours that are the same over SSH and TLS ---
    def half_message(self):
        """After the station's first bytes: the start of a message, then nothing more, ever."""
        if self.framer.chunked:
            self.stream.send(b"\n#1000\n<rpc-reply mess")
        else:
            self.stream.send(b'<rpc-reply message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><da')
        self.status.mark("partial-sent", "chunked" if self.framer.chunked else "eom")
        self.discard_forever()

    def flood(self):
        sent = 0
        batch = []
        while True:
            for _ in range(64):
                batch.append(self.framer.frame(notification()))
            self.stream.send(b"".join(batch))
            batch.clear()
            if sent == 0:
                self.status.mark("flooding")
            sent += 64
            if sent % 65536 == 0:
                self.status.mark("flooded", str(sent))
            self.drain()
            if self.closed:
                self.status.mark("flood-ended", str(sent))
                return

    def huge(self, size, msg_id=b"1"):
        """One rpc-reply of `size` bytes at full speed (one chunk in 1.1 framing), then normal service."""
        head = (b'<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="' + msg_id
                + b'"><data>')
        tail = b"</data></rpc-reply>"
        filler = size - len(head) - len(tail)
        self.status.mark("huge-started", str(size))
        if self.framer.chunked:
            self.stream.send(b"\n#%d\n" % (len(head) + filler + len(tail)))
        self.stream.send(head)
        block = b"x" * (1 << 20)
        left = filler
        while left > 0:
            n = min(left, len(block))
            self.stream.send(block[:n])
            left -= n
        self.stream.send(tail + (b"\n##\n" if self.framer.chunked else EOM))
        self.status.mark("huge-sent", str(size))
        self.serve(answer=True)
