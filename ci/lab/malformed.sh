#!/usr/bin/env bash
# Malformed frames from the kernel side of the tap reach the engine: each is dropped and
# counted under its reason, nothing panics, and the engine still answers ping afterwards.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
lab_init
lab_host a || exit 1
lab_engine a 10.78.0.2/24 --idle interrupt || exit 1
eip=$(lab_engine_ip a); kip=$(lab_kernel_ip a)
emac=$(sed -n 's/^migratory: engine .* mac \([0-9a-f:]*\) .*/\1/p' "${LAB_LOG[a]}")

lab_exec a ping -c 1 -W 2 "$eip" >/dev/null || { echo "FAIL: engine not reachable before the test"; exit 1; }
lab_exec a python3 "$here/py/badframes.py" "${LAB_TAP[a]}" "$emac" "$eip" "$kip" || { echo "FAIL: could not send frames"; exit 1; }
out=$(lab_exec a ping -c 3 -i 0.2 -W 2 "$eip" 2>&1)
echo "$out" | grep -q " 3 received" || { echo "FAIL: engine stopped answering after malformed frames"; lab_engine_log a; exit 1; }

lab_stop_engine a; rc=$LAB_RC
log=$(lab_engine_log a)
[ "$rc" = 0 ] || { echo "FAIL: engine exited with $rc"; echo "$log"; exit 1; }
fails=0
for c in drop_ipv4_truncated drop_ipv4_bad_checksum drop_icmp_bad_checksum drop_ipv4_options \
         drop_ipv4_fragment drop_unknown_ethertype drop_arp_malformed drop_ip_protocol_unsupported; do
  if echo "$log" | grep -q "^  $c: [1-9]"; then
    echo "ok: $(echo "$log" | grep "^  $c: ")"
  else
    echo "FAIL: counter $c not incremented"; fails=$((fails + 1))
  fi
done
# A total length past the frame's end is a truncated IPv4 packet, counted as such (2 in all).
echo "$log" | grep -q "^  drop_ipv4_truncated: 2$" || { echo "FAIL: total_len past frame not counted as ipv4_truncated"; fails=$((fails + 1)); }
echo "$log" | grep -q "mbufs_in_use_at_exit: 0$" || { echo "FAIL: mbufs leaked"; fails=$((fails + 1)); }
[ "$fails" -eq 0 ] || { echo "$log"; exit 1; }
echo "ok: every malformed frame dropped and counted; engine alive; no mbuf leaked"
