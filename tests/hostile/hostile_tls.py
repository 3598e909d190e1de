#!/usr/bin/python3
"""A hostile NETCONF-over-TLS call-home device (RFC 8071 section 4): dials the station, then is the TLS *server*
(Python ssl) on that socket with its IDevID, demands the station's client certificate, and speaks NETCONF badly.

Markers: see README.md in this directory.
"""
import argparse
import socket
import ssl
import sys

import hostile_common as hc

MODES = ["normal", "half-message", "never-read", "notification-flood", "huge-message", "no-close-reply"]


class TlsStream:
    def __init__(self, ssock):
        self.ssock = ssock

    def send(self, data):
        self.ssock.settimeout(None)
        self.ssock.sendall(data)

    def recv(self, n, timeout):
        self.ssock.settimeout(timeout)
        try:
            return self.ssock.recv(n)
        except (socket.timeout, ssl.SSLWantReadError):
            return None
        except ssl.SSLZeroReturnError:
            return b""
        except (ConnectionResetError, ssl.SSLError):
            return b""


def main():
    p = argparse.ArgumentParser(description=__doc__)
    hc.add_connect_arguments(p)
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--cert", required=True, help="the device's chain (leaf first, PEM)")
    p.add_argument("--key", required=True, help="its private key (PEM)")
    p.add_argument("--ca", default=None, help="CA that must have signed the station's client certificate")
    p.add_argument("--no-base11", action="store_true", help="advertise base:1.0 only (end-of-message framing)")
    p.add_argument("--huge-size", type=int, default=100 * 1024 * 1024, help="huge-message: bytes in the message")
    args = p.parse_args()

    status = hc.Status(args.status)
    hc.install_sigterm(status)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    if args.ca:
        ctx.load_verify_locations(args.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED

    sock = hc.connect_out(args.connect, args.source, rcvbuf=4096 if args.mode == "never-read" else None)
    status.mark("connected", "%s:%d" % sock.getsockname()[:2])
    sock.settimeout(args.timeout)
    try:
        ssock = ctx.wrap_socket(sock, server_side=True)
    except (ssl.SSLError, OSError) as e:
        status.mark("closed", "during the TLS handshake: %s" % e)
        return 0
    peer = ssock.getpeercert() or {}
    subject = ", ".join("%s=%s" % kv for rdn in peer.get("subject", ()) for kv in rdn)
    status.mark("tls-handshake-done", "%s %s" % (ssock.version(), subject or "(no client certificate)"))

    dev = hc.NetconfDevice(TlsStream(ssock), status, base11=not args.no_base11,
                           notifications=args.mode == "notification-flood")
    try:
        dev.send_hello()
        if args.mode == "never-read":
            status.mark("never-reading")
            hc.wait_until_tcp_closed(ssock)
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
            elif args.mode == "no-close-reply":
                dev.serve(answer=False)
            else:
                dev.serve(answer=True)
    except (OSError, ssl.SSLError) as e:
        status.mark("closed", str(e) or type(e).__name__)
        return 0
    status.mark("closed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
