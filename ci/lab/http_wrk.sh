#!/usr/bin/env bash
# wrk (2 threads, 64 keep-alive connections, 10 s) against `--app http` serving a small
# page: prints requests/s and latency; fails on any socket error or non-2xx response, or
# if wrk completed no requests. The engine stops cleanly with no mbuf leaked.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
lab_init

fail() { echo "FAIL: $*"; lab_engine_log a | grep -v '^  ' | tail -20; exit 1; }
command -v wrk >/dev/null || { echo "FAIL: wrk missing: run ci/setup"; exit 1; }

root="$LAB_DIR/site"
mkdir -p "$root"
python3 -c 'import sys; sys.stdout.write("<!doctype html>\n<title>migratory</title>\n" + "<p>" + "x" * 1000 + "\n")' >"$root/index.html"
size=$(stat -c %s "$root/index.html")

lab_host a || exit 1
lab_engine a 10.85.0.2/24 --idle interrupt --app http --root "$root" || exit 1
eip=$(lab_engine_ip a)

# The page is there before the load starts.
code=$(lab_exec a curl -sS -m 10 -o /dev/null -w '%{http_code}' "http://$eip/") || fail "curl failed"
[ "$code" = 200 ] || fail "GET / gave $code"

lab_exec a timeout 60 wrk -t2 -c64 -d10s --latency "http://$eip/" >"$LAB_DIR/wrk.out" 2>&1 ||
  { cat "$LAB_DIR/wrk.out"; fail "wrk failed"; }
out=$(cat "$LAB_DIR/wrk.out")
echo "$out" | sed 's/^/  | /'
python3 "$here/py/wrk_check.py" "$LAB_DIR/wrk.out" || fail "wrk figures"
rps=$(echo "$out" | sed -n 's/^Requests\/sec:[[:space:]]*\([0-9.]*\).*/\1/p')
avg=$(echo "$out" | sed -n 's/^[[:space:]]*Latency[[:space:]]*\([^[:space:]]*\).*/\1/p' | head -1)
p99=$(echo "$out" | sed -n 's/^[[:space:]]*99%[[:space:]]*\([^[:space:]]*\).*/\1/p')

stats=$("$MIGRATORY_BIN" ctl --name "a-$LAB_ID" stats --json) || fail "ctl stats"
python3 - "$stats" <<'PY'
import json, sys
t = json.loads(sys.argv[1])["total"]
print(f"engine: accepted={t['tcp_accepted']} retransmits={t['tcp_retransmits']} rto_expiries={t['tcp_rto_expiries']} "
      f"errors={t['tcp_errors']} rx_packets={t['rx_packets']} tx_packets={t['tx_packets']}")
PY

lab_stop_engine a
[ "$LAB_RC" = 0 ] || fail "engine exited with $LAB_RC"
lab_engine_log a | grep -q "mbufs_in_use_at_exit: 0$" || fail "mbufs leaked"
echo "ok: wrk -t2 -c64 -d10s on a $size-byte page: $rps requests/s, latency avg $avg p99 $p99; no socket errors, all 2xx; clean stop"
