#!/usr/bin/python3
"""Hostile peers below SSH/TLS: silent sockets, garbage, connect/reset storms. Markers: see README.md here."""
import argparse
import os
import select
import socket
import struct
import sys
import time

import hostile_common as hc


def spread_source(args, i):
    """--source A.B.C.D with --spread N: the i-th socket binds A.B.C.(D + i % N), so that per-source limits of the
    station see N sources."""
    if not args.source or args.spread <= 1:
        return args.source
    a, b, c, d = (int(x) for x in args.source.split("."))
    return "%d.%d.%d.%d" % (a, b, c, d + i % args.spread)


def silent(args, status):
    """K connections that never send a byte; exits once the station has closed all of them."""
    socks = []
    for i in range(args.count):
        try:
            socks.append(hc.connect_out(args.connect, spread_source(args, i)))
        except OSError as e:
            status.mark("connect-failed", str(e))
    status.mark("all-connected", str(len(socks)))
    open_socks = {s.fileno(): s for s in socks}
    closed = 0
    while open_socks:
        readable, _, _ = select.select(list(open_socks.values()), [], [], 1.0)
        for s in readable:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data:
                continue  # an SSH client speaks first (its banner); a silent device just does not answer
            closed += 1
            del open_socks[s.fileno()]
            s.close()
            status.mark("station-closed", "%d/%d" % (closed, len(socks)))
    status.mark("all-closed", str(closed))
    return 0


def garbage(args, status):
    """A bogus SSH banner and random bytes, then waits for the station to hang up."""
    sock = hc.connect_out(args.connect, args.source)
    status.mark("connected", "%s:%d" % sock.getsockname()[:2])
    try:
        sock.sendall(args.banner.encode() + b"\r\n" + os.urandom(args.bytes))
        status.mark("garbage-sent", str(args.bytes))
        sock.settimeout(None)
        while sock.recv(65536):
            pass
    except OSError as e:
        status.mark("closed", str(e))
        return 0
    status.mark("closed")
    return 0


def reset_storm(args, status):
    """Connects and at once resets (SO_LINGER 0), `count` times (0: until SIGTERM) at `rate` per second."""
    status.mark("storm-started")
    n = failed = 0
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    next_at = time.monotonic()
    while args.count == 0 or n + failed < args.count:
        try:
            s = hc.connect_out(args.connect, spread_source(args, n + failed), timeout=2.0)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            n += 1
            if n % 100 == 0:
                status.mark("resets", str(n))
        except OSError:
            failed += 1
        if interval:
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    status.mark("storm-done", "%d resets, %d failed connects" % (n, failed))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__)
    hc.add_connect_arguments(p)
    p.add_argument("--mode", required=True, choices=["silent", "garbage", "reset-storm"])
    p.add_argument("--count", type=int, default=1, help="silent: sockets; reset-storm: connections (0: forever)")
    p.add_argument("--rate", type=float, default=0.0, help="reset-storm: connections per second (0: no pause)")
    p.add_argument("--spread", type=int, default=1, help="silent, reset-storm: cycle over N source addresses")
    p.add_argument("--bytes", type=int, default=65536, help="garbage: random bytes after the banner")
    p.add_argument("--banner", default="SSH-2.0-\x7fhostile garbage \x00\x01", help="garbage: first line")
    args = p.parse_args()
    status = hc.Status(args.status)
    hc.install_sigterm(status)
    return {"silent": silent, "garbage": garbage, "reset-storm": reset_storm}[args.mode](args, status)


if __name__ == "__main__":
    sys.exit(main())
