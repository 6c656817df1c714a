#!/usr/bin/env python3
"""Moves live connections between the cores of a two-core engine with `migratory ctl`,
checking every answer (one Python process instead of a shell loop that starts a JSON
parser per step: moves land while the traffic still flows).

usage:
  ctl_moves.py BIN NAME alternate ID MOVES [--watch FILE --size BYTES] [--grow BYTES] [--gap S]
      Moves connection ID to the other core MOVES times. After each move `ctl conns` must
      show it on the new core and, with --watch, FILE (the client's copy of a download of
      --size bytes) must grow by --grow bytes within 5 s (or be complete).
  ctl_moves.py BIN NAME each [--port P] [--log FILE]
      Moves every connection `ctl conns` lists (with local port P) once, by id, to the
      other core; then `ctl conns` must show each on its new core. --log: one line per
      move (wall-clock start and end, id, remote address, cores, latency).

Every move must answer exit 0 with one move, moved=true, from the core it was on to the
one asked. Prints one line per move (alternate) or a summary (each), then a line
`latencies_ns: ...` (the ctl answers' freeze-to-adopted latencies). Exits 1 with a
`FAIL:` line on the first failure.
"""
import json
import os
import subprocess
import sys
import time


class Fail(Exception):
    pass


def ctl(bin_, name, *args):
    p = subprocess.run([bin_, "ctl", "--name", name, *args, "--json"], capture_output=True, text=True, timeout=30)
    try:
        v = json.loads(p.stdout) if p.stdout.strip() else {}
    except json.JSONDecodeError:
        v = {"unparsed": p.stdout}
    return p.returncode, v, p.stderr.strip()


def conns(bin_, name):
    rc, v, err = ctl(bin_, name, "conns")
    if rc != 0 or v.get("problems"):
        raise Fail(f"ctl conns: exit {rc} {v} {err}")
    return v["connections"]


def move(bin_, name, cid, frm, to):
    rc, v, err = ctl(bin_, name, "migrate", "--conn", cid, "--to-core", str(to))
    ms = v.get("moves", [])
    ok = (rc == 0 and "error" not in v and len(ms) == 1 and ms[0].get("moved") is True
          and ms[0].get("id") == cid and ms[0].get("from") == frm and ms[0].get("to") == to)
    if not ok:
        raise Fail(f"move of {cid} core {frm} -> {to}: exit {rc}: {json.dumps(v)} {err}")
    return ms[0]["latency_ns"]


def size(path):
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def opt(args, flag, default, conv=str):
    return conv(args[args.index(flag) + 1]) if flag in args else default


def alternate(bin_, name, args):
    cid, moves = args[0], int(args[1])
    watch = opt(args, "--watch", None)
    total = opt(args, "--size", 0, int)
    grow = opt(args, "--grow", 2 << 20, int)
    gap = opt(args, "--gap", 0.2, float)
    where = [c["core"] for c in conns(bin_, name) if c["id"] == cid]
    if len(where) != 1:
        raise Fail(f"connection {cid} listed {len(where)} times")
    core = where[0]
    lat = []
    for i in range(1, moves + 1):
        if watch and total and size(watch) >= total:
            raise Fail(f"the download was complete after {i - 1} moves (it must last longer: lower the rate)")
        to = 1 - core
        t0 = time.monotonic()
        lat.append(move(bin_, name, cid, core, to))
        now = [c["core"] for c in conns(bin_, name) if c["id"] == cid]
        if now != [to]:
            raise Fail(f"after move {i} (core {core} -> {to}) ctl conns shows the connection on cores {now}")
        line = f"move {i}: core {core} -> {to}, adopted in {lat[-1] / 1000:.0f} us (ctl answer {1000 * (time.monotonic() - t0):.1f} ms)"
        core = to
        if watch:
            start = size(watch)
            deadline = time.monotonic() + 5
            while size(watch) - start < grow and size(watch) < total:
                if time.monotonic() > deadline:
                    raise Fail(f"the download stalled after move {i} (now on core {core}): "
                               f"{size(watch) - start} bytes in 5 s, at {size(watch)} of {total}")
                time.sleep(0.01)
            line += f"; download at {size(watch) >> 20} MiB and growing"
        print(line, flush=True)
        time.sleep(gap)
    print(f"{moves} moves of {cid} done, now on core {core}")
    return lat


def each(bin_, name, args):
    port = opt(args, "--port", None)
    listed = [c for c in conns(bin_, name) if port is None or c["local"].endswith(f":{port}")]
    if not listed:
        raise Fail("no connection to move")
    lat = []
    want = {}
    t0 = time.monotonic()
    log = open(opt(args, "--log", os.devnull), "a")
    for c in listed:
        to = 1 - c["core"]
        t = time.time()
        lat.append(move(bin_, name, c["id"], c["core"], to))
        want[c["id"]] = to
        print(f"{t:.3f} {time.time():.3f} {c['id']} {c['remote']} core {c['core']} -> {to} adopted in {lat[-1]} ns", file=log)
    log.close()
    dt = time.monotonic() - t0
    now = {c["id"]: c["core"] for c in conns(bin_, name)}
    wrong = [(i, now.get(i), to) for i, to in want.items() if now.get(i) != to]
    if wrong:
        raise Fail(f"{len(wrong)} connections not on their new core after the moves (id, now, wanted): {wrong[:5]}")
    n0 = sum(1 for c in listed if c["core"] == 0)
    print(f"moved each of {len(listed)} connections once by id ({n0} core 0 -> 1, {len(listed) - n0} core 1 -> 0) "
          f"in {dt:.2f}s; ctl conns shows each on its new core")
    return lat


def main():
    bin_, name, mode, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    try:
        lat = {"alternate": alternate, "each": each}[mode](bin_, name, args)
    except Fail as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    print("latencies_ns: " + " ".join(str(x) for x in lat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
