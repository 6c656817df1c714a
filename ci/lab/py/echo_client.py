#!/usr/bin/env python3
"""Opens N concurrent connections to an echo server, sends random data on each, checks
that every byte comes back in order, then closes them.

usage: echo_client.py HOST PORT CONNECTIONS BYTES_PER_CONNECTION [--timeout S]
Prints one summary line; exits 1 on any mismatch, error or timeout.
"""
import os
import selectors
import socket
import sys
import time


def main():
    host, port, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    timeout = float(sys.argv[sys.argv.index("--timeout") + 1]) if "--timeout" in sys.argv else 60.0
    sel = selectors.DefaultSelector()
    conns = {}
    t0 = time.monotonic()
    # Connect in waves so the kernel's SYN backlog is not the bottleneck being tested.
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((host, port))
        data = os.urandom(size)
        conns[s] = {"out": data, "sent": 0, "expect": data, "got": bytearray(), "connected": False}
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ)
    done = 0
    errors = 0
    while done + errors < n:
        if time.monotonic() - t0 > timeout:
            print(f"FAIL: timeout after {timeout}s: {done} done, {errors} errors, {n - done - errors} pending")
            return 1
        for key, mask in sel.select(timeout=1.0):
            s = key.fileobj
            c = conns[s]
            try:
                if mask & selectors.EVENT_WRITE and c["sent"] < len(c["out"]):
                    c["sent"] += s.send(c["out"][c["sent"]:c["sent"] + 65536])
                    if c["sent"] == len(c["out"]):
                        sel.modify(s, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed early")
                    c["got"] += chunk
                    if len(c["got"]) >= len(c["expect"]):
                        sel.unregister(s)
                        if bytes(c["got"]) != c["expect"]:
                            print("FAIL: echoed bytes differ")
                            errors += 1
                        else:
                            done += 1
                        s.close()
            except (ConnectionError, OSError) as e:
                errors += 1
                try:
                    sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()
                print(f"error: {e}")
    dt = time.monotonic() - t0
    print(f"{done}/{n} connections echoed {size} bytes each byte-exact in {dt:.2f}s, {errors} errors")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
