#!/usr/bin/env python3
"""Reads wrk's output (a file) and checks it, for the ci/lab tests that run wrk.

  wrk_check.py FILE

Fails (exit 1, with the reason) on any socket error, any non-2xx/3xx response, or no
completed request; otherwise prints one line: requests, requests/s, latency avg, stdev,
max, p99 (when wrk ran with --latency).
"""
import re
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        out = f.read()

    def grab(pattern):
        m = re.search(pattern, out, re.M)
        return m.group(1) if m else None

    rps = grab(r"^Requests/sec:\s+([\d.]+)")
    total = grab(r"^\s+(\d+) requests in")
    lat = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if not (rps and total and lat):
        sys.exit("FAIL: could not read wrk's output")
    errors = grab(r"^\s+Socket errors: (.*)$")
    non2xx = grab(r"^\s+Non-2xx or 3xx responses: (\d+)")
    if int(total) == 0:
        sys.exit("FAIL: wrk completed no request")
    if errors is not None:
        sys.exit(f"FAIL: wrk saw socket errors: {errors}")
    if non2xx is not None:
        sys.exit(f"FAIL: {non2xx} non-2xx responses")
    p99 = grab(r"^\s+99%\s+(\S+)") or "-"
    print(f"wrk: {total} requests, {float(rps):.0f} requests/s, latency avg {lat.group(1)} "
          f"stdev {lat.group(2)} max {lat.group(3)} p99 {p99}")


if __name__ == "__main__":
    main()
