#!/usr/bin/env python3
"""HTTP checks against `migratory serve --app http`, for ci/lab/http_*.sh.

  http_client.py HOST PORT ROOT keepalive N      N GETs on one keep-alive connection
  http_client.py HOST PORT ROOT parallel C N     C connections at once, N GETs each
  http_client.py HOST PORT ROOT protocol         pipelining, HEAD, HTTP/1.0, errors

ROOT is the directory the server serves: every body is compared with the file's bytes.
Each mode prints one summary line and exits non-zero (with the reason) on any failure.
"""
import http.client
import os
import socket
import sys
import threading
import time

TIMEOUT = 30


def site_files(root):
    """Small files of the site, as (url path, bytes)."""
    out = []
    for dirpath, _, names in os.walk(root):
        for n in sorted(names):
            p = os.path.join(dirpath, n)
            if os.path.getsize(p) <= 1 << 20:
                rel = os.path.relpath(p, root).replace(os.sep, "/")
                with open(p, "rb") as f:
                    out.append(("/" + rel, f.read()))
    out.sort()
    if not out:
        sys.exit("FAIL: no small files under " + root)
    return out


def get_many(host, port, files, n, label):
    """n GETs on one connection; every one must reuse the same socket."""
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    conn.connect()
    local = conn.sock.getsockname()
    for i in range(n):
        path, want = files[i % len(files)]
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise AssertionError(f"{label}: request {i} {path}: status {r.status}")
        if body != want:
            raise AssertionError(f"{label}: request {i} {path}: {len(body)} bytes differ from the file ({len(want)})")
        if r.getheader("Content-Length") != str(len(want)):
            raise AssertionError(f"{label}: request {i}: Content-Length {r.getheader('Content-Length')}")
        if r.will_close or conn.sock is None or conn.sock.getsockname() != local:
            raise AssertionError(f"{label}: request {i}: the connection was not kept alive")
    conn.close()


def keepalive(host, port, root, n):
    files = site_files(root)
    t0 = time.monotonic()
    get_many(host, port, files, n, "keepalive")
    dt = time.monotonic() - t0
    print(f"keepalive: {n} GETs on one connection, all 200 and byte-exact, {n / dt:.0f} req/s")


def parallel(host, port, root, c, n):
    files = site_files(root)
    errors = []
    start = threading.Barrier(c)

    def worker(k):
        try:
            start.wait(TIMEOUT)
            get_many(host, port, files[k % len(files):] + files[:k % len(files)], n, f"client {k}")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            errors.append(f"client {k}: {e!r}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    dt = time.monotonic() - t0
    if any(t.is_alive() for t in threads):
        errors.append("some clients did not finish")
    if errors:
        for e in errors[:10]:
            print("FAIL:", e)
        sys.exit(f"FAIL: {len(errors)} of {c} parallel clients failed")
    print(f"parallel: {c} keep-alive clients x {n} GETs, all 200 and byte-exact, {c * n / dt:.0f} req/s")


def exchange(host, port, data, wait_close=True):
    """Sends raw bytes, returns everything received until the server closes (or a
    pause of 2 s when not waiting for a close), and whether it closed."""
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    s.sendall(data)
    got = b""
    closed = False
    s.settimeout(TIMEOUT if wait_close else 2)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            got += d
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    s.close()
    return got, closed


def split_responses(raw):
    """Parses concatenated responses: [(status, headers dict, body)]."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"truncated response head: {raw[:200]!r}")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        raw = rest[n:]
    return out


def protocol(host, port, root):
    files = site_files(root)
    (p1, b1), (p2, b2) = files[0], files[-1]
    h = f"Host: {host}\r\n"
    checks = []

    # Three pipelined requests in one write, the last one closing: answered in order.
    got, closed = exchange(host, port, (
        f"GET {p1} HTTP/1.1\r\n{h}\r\n"
        f"HEAD {p2} HTTP/1.1\r\n{h}\r\n"
        f"GET /missing-file HTTP/1.1\r\n{h}\r\n"
        f"GET {p2} HTTP/1.1\r\n{h}Connection: close\r\n\r\n"
        f"GET {p1} HTTP/1.1\r\n{h}\r\n").encode())
    assert closed, "server did not close after Connection: close"
    # HEAD has a Content-Length but no body: parse knowing the methods.
    raw = got
    statuses = []
    for method in ("GET", "HEAD", "GET", "GET"):
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        hdrs = {l.split(b":")[0].lower(): l.split(b":", 1)[1].strip() for l in lines[1:]}
        n = int(hdrs.get(b"content-length", b"0"))
        body, raw = (b"", rest) if method == "HEAD" else (rest[:n], rest[n:])
        statuses.append((status, n, body))
    assert statuses[0] == (200, len(b1), b1), statuses[0][:2]
    assert statuses[1] == (200, len(b2), b""), statuses[1][:2]
    assert statuses[2][0] == 404, statuses[2][:2]
    assert statuses[3] == (200, len(b2), b2), statuses[3][:2]
    assert raw == b"", f"answered past Connection: close: {raw[:100]!r}"
    checks.append("pipelined")

    # The same pipeline byte by byte (requests split across reads).
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = (f"GET {p1} HTTP/1.1\r\n{h}\r\n" * 3).encode()
    for i in range(len(req)):
        s.sendall(req[i:i + 1])
        if i % 16 == 0:
            time.sleep(0.001)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    rs = split_responses(got)
    assert [(r[0], r[2]) for r in rs] == [(200, b1)] * 3, [r[0] for r in rs]
    checks.append("split-across-reads")

    # HTTP/1.0 closes unless keep-alive is asked for.
    got, closed = exchange(host, port, f"GET {p1} HTTP/1.0\r\n\r\n".encode())
    assert closed and split_responses(got)[0][0] == 200, got[:100]
    got, closed = exchange(host, port, f"GET {p1} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode(), wait_close=False)
    assert not closed, "HTTP/1.0 keep-alive was closed"
    assert split_responses(got)[0][1].get("connection", "").lower() == "keep-alive", got[:200]
    checks.append("http/1.0")

    # Errors: malformed requests are answered, then closed; refused methods keep the
    # connection (their body is skipped) and the next request is answered.
    hb = h.encode()
    for name, data, want, closes in [
        ("garbage", b"\x00\x01\x02 nonsense\r\n\r\n", [400], True),
        ("no Host", b"GET / HTTP/1.1\r\n\r\n", [400], True),
        ("huge head", b"GET / HTTP/1.1\r\n" + hb + b"X: " + b"a" * 20000 + b"\r\n\r\n", [431], True),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\n" + hb + b"\r\n", [505], True),
        ("escape", b"GET /../../../../etc/passwd HTTP/1.1\r\n" + hb + b"Connection: close\r\n\r\n", [404], True),
        ("POST then GET", b"POST / HTTP/1.1\r\n" + hb + b"Content-Length: 3\r\n\r\nabc"
            + f"GET {p1} HTTP/1.1\r\n{h}\r\n".encode(), [405, 200], False),
        ("BREW then GET", b"BREW / HTTP/1.1\r\n" + hb + b"\r\n" + f"GET {p1} HTTP/1.1\r\n{h}\r\n".encode(), [501, 200], False),
    ]:
        got, closed = exchange(host, port, data, wait_close=closes)
        rs = split_responses(got)
        assert [r[0] for r in rs] == want, f"{name}: wanted {want}, got {got[:160]!r}"
        assert closed == closes, f"{name}: closed={closed}, wanted {closes}"
    checks.append("errors")
    print("protocol: " + ", ".join(checks) + " ok")


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    host, port, root, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    try:
        if mode == "keepalive":
            keepalive(host, port, root, int(sys.argv[5]))
        elif mode == "parallel":
            parallel(host, port, root, int(sys.argv[5]), int(sys.argv[6]))
        elif mode == "protocol":
            protocol(host, port, root)
        else:
            sys.exit(__doc__)
    except (AssertionError, OSError, http.client.HTTPException) as e:
        sys.exit(f"FAIL: {mode}: {e!r}")


if __name__ == "__main__":
    main()
