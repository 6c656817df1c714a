#!/usr/bin/env bash
# The Linux kernel in a namespace pings the engine: ARP is resolved to the engine's MAC,
# 10 echo requests get 10 replies, and the engine stops cleanly with no mbuf leaked.
set -uo pipefail
source "$(dirname "$0")/../lib/lab.sh"
lab_init

lab_host a || exit 1
lab_engine a 10.77.0.2/24 --idle interrupt || exit 1
eip=$(lab_engine_ip a)
emac=$(sed -n 's/^migratory: engine .* mac \([0-9a-f:]*\) .*/\1/p' "${LAB_LOG[a]}")
[ -n "$emac" ] || { echo "FAIL: no MAC in the start-up line"; lab_engine_log a; exit 1; }

out=$(lab_exec a ping -c 10 -i 0.2 -W 2 "$eip" 2>&1)
echo "$out" | tail -2
echo "$out" | grep -q " 10 received, 0% packet loss" || { echo "FAIL: expected 10 replies, none lost"; lab_engine_log a; exit 1; }

neigh=$(lab_exec a ip neigh show "$eip")
echo "kernel neighbour entry: $neigh"
echo "$neigh" | grep -qi "lladdr $emac" || { echo "FAIL: kernel ARP entry is not the engine's MAC $emac"; exit 1; }

# The running engine's counters through its control socket (published every 10 ms).
sleep 0.1
stats=$("$MIGRATORY_BIN" ctl --name "a-$LAB_ID" stats --json) || { echo "FAIL: migratory ctl stats failed"; exit 1; }
python3 - "$stats" <<'PY2' || exit 1
import json, sys
v = json.loads(sys.argv[1])
t = v["total"]
assert t["icmp_echo_replies_sent"] == 10, t
assert t["rx_packets"] >= 11 and t["tx_packets"] >= 11, t
assert len(v["cores"]) == 1
print(f"ctl stats: icmp_echo_replies_sent={t['icmp_echo_replies_sent']} rx={t['rx_packets']} tx={t['tx_packets']} mbufs_in_use={t['mbufs_in_use']}")
PY2
"$MIGRATORY_BIN" ctl --name "a-$LAB_ID" stats | head -3

lab_stop_engine a; rc=$LAB_RC
log=$(lab_engine_log a)
[ "$rc" = 0 ] || { echo "FAIL: engine exited with $rc"; echo "$log"; exit 1; }
echo "$log" | grep -q "icmp_echo_replies_sent: 10$" || { echo "FAIL: engine did not count 10 echo replies"; echo "$log"; exit 1; }
echo "$log" | grep -q "arp_replies_sent: [1-9]" || { echo "FAIL: engine did not count an ARP reply"; echo "$log"; exit 1; }
echo "$log" | grep -q "mbufs_in_use_at_exit: 0$" || { echo "FAIL: mbufs leaked"; echo "$log"; exit 1; }
echo "ok: ping via ARP, 10/10 replies, clean stop"
