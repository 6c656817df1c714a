#!/usr/bin/env python3
"""Keeps N echo connections busy both ways, for a test that moves them between cores
meanwhile: each connection writes random chunks (1 B .. --chunk) with random pauses
(0 .. --pause ms) and reads the echo as it comes, comparing every byte on the fly with
what it sent. A connection writes at least --bytes; while the file --until names does not
exist it goes on writing (up to 16 times --bytes), so the data keeps flowing for as long
as the test is moving connections. Then it shuts down its side, reads the echo to the end
(the server closes after echoing the last byte) and checks that nothing is missing.

usage: echo_migrate.py HOST PORT N --bytes B [--chunk C] [--pause MS] [--until FILE] [--timeout S]

Prints `ready N` (flushed) once every connection has had echoed bytes back, then one
summary line. Exits 1 with `FAIL:` lines on any mismatch, early close, error or timeout.
"""
import collections
import os
import random
import selectors
import socket
import sys
import time


def opt(flag, default, conv):
    return conv(sys.argv[sys.argv.index(flag) + 1]) if flag in sys.argv else default


class Conn:
    def __init__(self, i, sock):
        self.i = i
        self.sock = sock
        self.sent = 0  # bytes the kernel took
        self.echoed = 0  # bytes back and checked
        self.unechoed = collections.deque()  # chunks sent, not yet echoed (front may be partly)
        self.head_off = 0  # bytes of unechoed[0] already echoed
        self.pending = b""  # a chunk the kernel did not take whole yet
        self.next_at = 0.0
        self.shut = False
        self.done = False
        self.max_wait = 0.0  # longest wait for echoed bytes while some were outstanding
        self.waiting_since = None  # since when bytes are outstanding with no echo
        self.max_wait_at = 0.0


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    want = opt("--bytes", 512 * 1024, int)
    chunk = opt("--chunk", 4096, int)
    pause = opt("--pause", 20.0, float) / 1000
    until = opt("--until", None, str)
    timeout = opt("--timeout", 60.0, float)
    cap = 16 * want
    rng = random.Random(int.from_bytes(os.urandom(8), "little"))
    sel = selectors.DefaultSelector()
    conns = []
    t0 = time.monotonic()
    t0_epoch = time.time()
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        s.connect_ex((host, port))
        c = Conn(i, s)
        c.port = None
        c.next_at = t0 + rng.random() * pause
        conns.append(c)
        sel.register(s, selectors.EVENT_READ, c)
    failures = []
    ready = False
    live = n

    def finish(c, why=None):
        nonlocal live
        if why:
            failures.append(f"connection {c.i} ({c.sock.getsockname()}): {why}")
        sel.unregister(c.sock)
        c.sock.close()
        c.done = True
        live -= 1

    while live:
        now = time.monotonic()
        if now - t0 > timeout:
            pend = [c for c in conns if not c.done]
            failures.append(f"timeout after {timeout}s: {len(pend)} connections not finished, e.g. "
                            + ", ".join(f"#{c.i} sent {c.sent} echoed {c.echoed} shut {c.shut}" for c in pend[:5]))
            break
        stop = until is None or os.path.exists(until)
        # Write what is due.
        for c in conns:
            if c.done or c.shut or now < c.next_at:
                continue
            if not c.pending:
                if c.sent >= want and (stop or c.sent >= cap):
                    c.sock.shutdown(socket.SHUT_WR)
                    c.shut = True
                    continue
                c.pending = rng.randbytes(rng.randint(1, chunk))
                c.unechoed.append(c.pending)
            try:
                k = c.sock.send(c.pending)
            except BlockingIOError:
                k = 0
            except OSError as e:
                finish(c, f"send: {e}")
                continue
            c.sent += k
            c.pending = c.pending[k:]
            if k and c.waiting_since is None:
                c.waiting_since = now
            # A chunk the kernel did not take whole: try again soon; else pause.
            c.next_at = now + (0.002 if c.pending else rng.random() * pause)
        # Read and check what came back.
        due = min((c.next_at for c in conns if not c.done and not c.shut), default=now + 0.05)
        for key, _ in sel.select(timeout=max(0.0, min(due - time.monotonic(), 0.05))):
            c = key.data
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                finish(c, f"recv: {e} (sent {c.sent}, echoed {c.echoed})")
                continue
            t = time.monotonic()
            if c.port is None:
                c.port = c.sock.getsockname()[1]
            if not data:
                if not c.shut:
                    finish(c, f"closed by the server before we closed (sent {c.sent}, echoed {c.echoed})")
                elif c.unechoed:
                    finish(c, f"closed with {c.sent - c.echoed} bytes not echoed (sent {c.sent})")
                else:
                    finish(c)
                continue
            if c.waiting_since is not None and t - c.waiting_since > c.max_wait:
                c.max_wait = t - c.waiting_since
                c.max_wait_at = c.waiting_since - t0
            mv = memoryview(data)
            bad = False
            while mv:
                if not c.unechoed:
                    finish(c, f"{len(mv)} bytes echoed that were never sent (at offset {c.echoed})")
                    bad = True
                    break
                head = c.unechoed[0]
                take = min(len(mv), len(head) - c.head_off)
                if mv[:take] != head[c.head_off:c.head_off + take]:
                    finish(c, f"echoed bytes differ at offset {c.echoed}")
                    bad = True
                    break
                c.echoed += take
                c.head_off += take
                mv = mv[take:]
                if c.head_off == len(head):
                    c.unechoed.popleft()
                    c.head_off = 0
            if bad:
                continue
            c.waiting_since = t if c.echoed < c.sent else None
        if not ready and all(c.echoed > 0 or c.done for c in conns):
            ready = True
            print(f"ready {n}", flush=True)
    dt = time.monotonic() - t0
    for f in failures[:20]:
        print(f"FAIL: {f}")
    ok = sum(1 for c in conns if c.done) - len(failures)
    total = sum(c.echoed for c in conns)
    sizes = sorted(c.sent for c in conns)
    slow = max(conns, key=lambda c: c.max_wait)
    wait = slow.max_wait
    print(f"{ok}/{n} connections echoed byte-exact: {total / 1048576:.1f} MiB sent and echoed back in {dt:.1f}s "
          f"(per connection {sizes[0] >> 10}..{sizes[-1] >> 10} KiB in chunks of 1..{chunk} B); "
          f"longest wait for an echo {wait * 1000:.0f} ms (connection {slow.i}, port {slow.port}, from {slow.max_wait_at:.3f}s, epoch {t0_epoch + slow.max_wait_at:.3f})",
          flush=True)
    return 0 if not failures and ok == n else 1


if __name__ == "__main__":
    sys.exit(main())
