#!/usr/bin/python3
"""A hostile NETCONF-over-SSH call-home device (RFC 8071): dials the station, then is the SSH *server* (paramiko)
on that socket, accepts the station's authentication and serves the `netconf` subsystem badly, by --mode.

Run with Debian's /usr/bin/python3 (python3-paramiko). Markers: see README.md in this directory.
"""
import argparse
import socket
import sys
import threading
import time

import paramiko
from paramiko.common import MSG_CHANNEL_REQUEST, MSG_GLOBAL_REQUEST

import hostile_common as hc

MODES = [
    "normal",  # a well-behaved device: answers hello, RPCs and <close-session>
    "half-message",
    "zero-window",
    "never-read",
    "notification-flood",
    "huge-message",
    "no-close-reply",
    "no-keepalive-reply",
    "drop-on-rpc",
    "huge-reply",
]


def load_host_key(path):
    errors = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key_file(path)
        except Exception as e:  # the next class may read it
            errors.append("%s: %s" % (cls.__name__, e))
    raise SystemExit("cannot load host key %s (%s)" % (path, "; ".join(errors)))


class Server(paramiko.ServerInterface):
    def __init__(self, status, authorized):
        self.status = status
        self.authorized = authorized  # base64 blob of the one key to accept, or None: any key
        self.subsystem = threading.Event()
        self.channel = None

    def get_allowed_auths(self, username):
        return "publickey,password"

    def check_auth_none(self, username):
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username, key):
        ok = self.authorized is None or key.get_base64() == self.authorized
        # paramiko verifies the signature of the final request itself; this is also called for the key probe
        self.status.mark("auth", "publickey %s %s" % (username, "accepted" if ok else "rejected"))
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_password(self, username, password):
        self.status.mark("auth", "password %s accepted" % username)
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_subsystem_request(self, channel, name):
        if name != "netconf":
            return False
        self.channel = channel
        self.subsystem.set()
        return True


class ChannelStream:
    def __init__(self, chan):
        self.chan = chan

    def send(self, data):
        self.chan.settimeout(None)
        self.chan.sendall(data)

    def recv(self, n, timeout):
        self.chan.settimeout(timeout)
        try:
            return self.chan.recv(n)
        except socket.timeout:
            return None


def ignore_requests(transport, status):
    """From now on the SSH layer answers no global request (keepalive@openssh.com) and no channel request that
    wants a reply: the transport stays up, SSH is hung."""

    def global_request(t, m):
        status.mark("request-ignored", "global " + m.get_text())

    def channel_request(chan, m):
        status.mark("request-ignored", "channel " + m.get_text())

    table = dict(transport._handler_table)
    table[MSG_GLOBAL_REQUEST] = global_request
    transport._handler_table = table
    chan_table = dict(transport._channel_handler_table)
    chan_table[MSG_CHANNEL_REQUEST] = channel_request
    transport._channel_handler_table = chan_table


def stop_reading(transport):
    """The SSH transport thread blocks before its next packet read: nothing is read from the socket any more."""
    never = threading.Event()
    packetizer = transport.packetizer

    def read_message():
        never.wait()

    packetizer.read_message = read_message


def main():
    p = argparse.ArgumentParser(description=__doc__)
    hc.add_connect_arguments(p)
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--host-key", required=True, metavar="FILE", help="private host key (ssh-keygen format)")
    p.add_argument("--authorized-key", default=None, metavar="LINE", help="accept only this public key")
    p.add_argument("--no-base11", action="store_true", help="advertise base:1.0 only (end-of-message framing)")
    p.add_argument("--huge-size", type=int, default=100 * 1024 * 1024, help="huge-message: bytes in the message")
    p.add_argument("--window", type=int, default=0, help="zero-window: the channel window we advertise")
    args = p.parse_args()

    status = hc.Status(args.status)
    hc.install_sigterm(status)
    host_key = load_host_key(args.host_key)
    authorized = args.authorized_key.split()[1] if args.authorized_key else None

    sock = hc.connect_out(args.connect, args.source, rcvbuf=4096 if args.mode == "never-read" else None)
    status.mark("connected", "%s:%d" % sock.getsockname()[:2])
    kwargs = {}
    if args.mode == "zero-window":
        kwargs["default_window_size"] = args.window
    t = paramiko.Transport(sock, **kwargs)
    # a station that is slow to start its side (busy workers) is the station's problem, not a reason to hang up early
    t.banner_timeout = args.timeout
    t.handshake_timeout = args.timeout
    t.auth_timeout = args.timeout
    t.add_server_key(host_key)
    server = Server(status, authorized)
    try:
        t.start_server(server=server)
    except (paramiko.SSHException, EOFError, OSError) as e:
        status.mark("closed", "during key exchange: %s" % e)
        return 0
    status.mark("kex-done")

    deadline = time.monotonic() + args.timeout
    while not server.subsystem.wait(0.1):
        if not t.is_active():
            # the station closes pending devices right after key exchange, before authentication
            status.mark("closed", "before the netconf subsystem")
            return 0
        if time.monotonic() > deadline:
            status.mark("error", "no netconf subsystem request within %.0f s" % args.timeout)
            return 1
    chan = server.channel
    status.mark("netconf-subsystem")
    if args.mode == "no-keepalive-reply":
        # after the subsystem request, whose reply the station needs to start NETCONF at all
        ignore_requests(t, status)
    dev = hc.NetconfDevice(ChannelStream(chan), status, base11=not args.no_base11,
                           notifications=args.mode == "notification-flood")
    try:
        dev.send_hello()
        if args.mode == "zero-window":
            status.mark("window-zero", str(args.window))
            # we never read the channel: paramiko never grows the window, the station can never send us a byte
            while t.is_active():
                time.sleep(0.1)
        elif args.mode == "never-read":
            stop_reading(t)
            status.mark("never-reading")
            hc.wait_until_tcp_closed(sock)
        else:
            if not dev.receive_hello():
                status.mark("closed", "before the station's hello")
                return 0
            if args.mode == "half-message":
                dev.half_message()
            elif args.mode == "notification-flood":
                dev.flood()
            elif args.mode == "huge-message":
                dev.huge(args.huge_size)
            elif args.mode == "huge-reply":
                # the answer to the station's first request, of --huge-size bytes
                if dev.read_until_rpc():
                    dev.huge(args.huge_size, (hc.message_id(dev.last_rpc) or "1").encode())
            elif args.mode == "no-close-reply":
                dev.serve(answer=False)
            elif args.mode == "drop-on-rpc":
                if dev.read_until_rpc():
                    # the whole SSH connection goes, in the middle of the station's request
                    t.close()
                    sock.close()
                    status.mark("dropped", "on the first rpc")
                    return 0
            else:  # normal, no-keepalive-reply
                dev.serve(answer=True)
                if args.mode == "normal" and not dev.closed:
                    chan.close()
    except (OSError, EOFError, paramiko.SSHException) as e:
        status.mark("closed", str(e) or type(e).__name__)
        return 0
    status.mark("closed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
