#!/usr/bin/env python3
"""What a failing migration test prints about the engine before stopping it: the
connections `ctl conns` lists (grouped by core and state, then the ones with queued data),
and per core the figures that tell a stalled core from a busy one (packets, steering,
migrations, mbufs, non-zero drops), with the migration latencies.

usage: ctl_evidence.py BIN NAME
"""
import collections
import json
import subprocess
import sys


def ctl(bin_, name, *args):
    p = subprocess.run([bin_, "ctl", "--name", name, *args, "--json"], capture_output=True, text=True, timeout=30)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        return {"error": f"exit {p.returncode}: {p.stdout.strip()} {p.stderr.strip()}"}


def main():
    bin_, name = sys.argv[1], sys.argv[2]
    v = ctl(bin_, name, "conns")
    conns = v.get("connections", [])
    groups = collections.Counter((c["core"], c["state"]) for c in conns)
    print(f"ctl conns: {len(conns)} connections; " + ", ".join(f"core {k[0]} {k[1]}: {n}" for k, n in sorted(groups.items()))
          + (f"; problems: {v['problems']}" if v.get("problems") else "") + (f"; error: {v['error']}" if "error" in v else ""))
    busy = [c for c in conns if c["send_queue"] or c["recv_queue"]]
    for c in busy[:12]:
        print(f"  {c['id']} {c['remote']} core {c['core']} {c['state']} send_q {c['send_queue']} recv_q {c['recv_queue']} "
              f"srtt {c['srtt_us']}us cwnd {c['cwnd']} retransmits {c['retransmits']}")
    if len(busy) > 12:
        print(f"  ... and {len(busy) - 12} more with queued data")
    s = ctl(bin_, name, "stats")
    if "error" in s:
        print(f"ctl stats: {s['error']}")
        return
    keys = ["rx_packets", "tx_packets", "steered_in", "steered_out", "connections", "mbufs_in_use", "migrations_in",
            "migrations_out", "migrations_in_flight", "migrations_redirected_segments", "migrations_owner_updates",
            "tcp_retransmits", "tcp_rto_expiries"]
    for c in s.get("cores", []):
        drops = {k: x for k, x in c.items() if k.startswith("drop_") and x}
        print(f"core lcore {c['lcore']}: " + " ".join(f"{k}={c[k]}" for k in keys if k in c) + (f" drops {drops}" if drops else ""))
    t = s["total"]
    print("total: " + " ".join(f"{k}={t[k]}" for k in t if k.startswith("migration") and t[k]))


if __name__ == "__main__":
    main()
