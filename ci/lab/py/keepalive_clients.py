#!/usr/bin/env python3
"""Keep-alive HTTP clients that keep asking while the server moves under them (ci/lab).

  keepalive_clients.py HOST PORT FILE N DIR

N clients, each on one keep-alive connection to HOST:PORT, GET /FILE over and over (a
pause of 20-120 ms between requests), every body compared with the file's bytes (FILE is
a path under the site's root, read from DIR/site/FILE). Files in DIR steer the run:

  DIR/ready   written by this script once every client has had an answer
  DIR/mark    created by the test: from then on each client counts its answers apart
  DIR/stop    created by the test: each client ends after its answer in flight

Any error (a refused or reset connection, a timeout, a status other than 200, a body
that differs, a connection not kept alive) is a failure. Prints one summary line; exits
non-zero, with the failures, if any client failed or a client had fewer than 2 answers
after DIR/mark.
"""
import http.client
import os
import random
import sys
import threading
import time

TIMEOUT = 20


def client(i, host, port, path, want, d, results):
    rng = random.Random(i)
    res = {"answers": 0, "after_mark": 0, "error": None}
    results[i] = res
    try:
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        conn.connect()
        local = conn.sock.getsockname()
        while True:
            marked = os.path.exists(os.path.join(d, "mark"))
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise AssertionError(f"status {r.status}")
            if body != want:
                raise AssertionError(f"{len(body)} bytes that differ from the file's {len(want)}")
            if r.will_close or conn.sock is None or conn.sock.getsockname() != local:
                raise AssertionError("the connection was not kept alive")
            res["answers"] += 1
            if marked:
                res["after_mark"] += 1
            if os.path.exists(os.path.join(d, "stop")):
                break
            time.sleep(rng.uniform(0.02, 0.12))
        conn.close()
    except Exception as e:  # every failure is reported, none is fatal to the others
        res["error"] = f"{type(e).__name__}: {e}"


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    host, port, name, n, d = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    with open(os.path.join(d, "site", name), "rb") as f:
        want = f.read()
    results = {}
    threads = [
        threading.Thread(target=client, args=(i, host, port, "/" + name, want, d, results), daemon=True)
        for i in range(n)
    ]
    for t in threads:
        t.start()
        time.sleep(0.002)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        done = [r for r in results.values() if r["answers"] > 0 or r["error"]]
        if len(done) == n:
            break
        time.sleep(0.05)
    with open(os.path.join(d, "ready.tmp"), "w") as f:
        f.write(f"{sum(1 for r in results.values() if r['answers'] > 0)}\n")
    os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
    for t in threads:
        t.join(timeout=120)
    failures = []
    for i in range(n):
        r = results.get(i, {"answers": 0, "after_mark": 0, "error": "never started"})
        if threads[i].is_alive():
            failures.append(f"client {i}: still waiting for an answer")
        elif r["error"]:
            failures.append(f"client {i} after {r['answers']} answers: {r['error']}")
        elif r["after_mark"] < 2:
            failures.append(f"client {i}: {r['after_mark']} answers after the mark (wanted 2 or more)")
    total = sum(r["answers"] for r in results.values())
    after = sum(r["after_mark"] for r in results.values())
    print(f"{n} keep-alive clients: {total} answers, {after} after the mark, {len(failures)} failed")
    for f in failures[:20]:
        print("  " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
