#!/usr/bin/env bash
# 2,000 concurrent connections from the Linux kernel to `--app echo`: random data on each
# comes back byte-exact, the connections close, and the engine's table is back to zero.
# Run once on one core and once on two cores of a two-queue tap, where the counters must
# show packets steered between the cores.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
lab_init

run_case() {
  local host=$1 cores=$2
  lab_host "$host" || return 1
  lab_engine "$host" 10.80.0.2/24 --idle interrupt --app echo --cores "$cores" || return 1
  # The kernel's SYN backlog and our accept path both see 2,000 SYNs at once.
  lab_exec "$host" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096
  lab_exec "$host" python3 "$here/py/echo_client.py" 10.80.0.2 7 2000 4096 --timeout 120 || { lab_engine_log "$host" | tail -20; return 1; }
  # Closed connections leave the table (the client closes first: no TIME-WAIT here).
  local stats i
  for i in $(seq 1 50); do
    stats=$("$MIGRATORY_BIN" ctl --name "$host-$LAB_ID" stats --json) || return 1
    python3 -c 'import json,sys; t=json.loads(sys.argv[1])["total"]; sys.exit(0 if t.get("connections",0)==0 else 1)' "$stats" && break
    sleep 0.1
  done
  python3 - "$stats" "$cores" <<'PY' || return 1
import json, sys
v = json.loads(sys.argv[1]); cores = int(sys.argv[2]); t = v["total"]
print(f"cores={cores}: accepted={t['tcp_accepted']} closed={t['tcp_closed']} connections={t['connections']} "
      f"retransmits={t['tcp_retransmits']} steered_out={t['steered_out']} steered_in={t['steered_in']}")
assert t["tcp_accepted"] == 2000, "every connection accepted"
assert t["connections"] == 0, "table back to zero"
assert len(v["cores"]) == cores
if cores > 1:
    assert t["steered_out"] > 0 and t["steered_in"] == t["steered_out"], "packets steered between cores"
    assert all(c["tcp_accepted"] > 0 for c in v["cores"]), "every core owns connections"
PY
  lab_stop_engine "$host"
  [ "$LAB_RC" = 0 ] || { echo "FAIL: engine exited with $LAB_RC"; lab_engine_log "$host" | tail -20; return 1; }
  lab_engine_log "$host" | grep -q "mbufs_in_use_at_exit: 0$" || { echo "FAIL: mbufs leaked"; return 1; }
}

run_case one 1 || { echo "FAIL: one core"; exit 1; }
run_case two 2 || { echo "FAIL: two cores"; exit 1; }
echo "ok: 2000 concurrent echo connections byte-exact on 1 and 2 cores; table back to zero; no mbuf leaked"
