#!/usr/bin/env bash
# Malformed frames from the kernel side of the tap reach the engine: each is dropped and
# counted under its reason, nothing panics, and the engine still answers ping afterwards.
# The drop counters must match what badframes.py sent exactly, reason by reason, with no
# other drop counted: the namespace has IPv6 off (lab_host), so no kernel traffic lands in
# them by chance, and one frame counted under the wrong reason, or lost, or counted twice,
# fails the test.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
lab_init
lab_host a || exit 1
lab_engine a 10.78.0.2/24 --idle interrupt || exit 1
eip=$(lab_engine_ip a); kip=$(lab_kernel_ip a)
emac=$(sed -n 's/^migratory: engine .* mac \([0-9a-f:]*\) .*/\1/p' "${LAB_LOG[a]}")

lab_exec a ping -c 1 -W 2 "$eip" >/dev/null || { echo "FAIL: engine not reachable before the test"; exit 1; }
sent=$(lab_exec a python3 "$here/py/badframes.py" "${LAB_TAP[a]}" "$emac" "$eip" "$kip") || { echo "FAIL: could not send frames"; exit 1; }
echo "$sent"
out=$(lab_exec a ping -c 3 -i 0.2 -W 2 "$eip" 2>&1)
echo "$out" | grep -q " 3 received" || { echo "FAIL: engine stopped answering after malformed frames"; lab_engine_log a; exit 1; }

lab_stop_engine a; rc=$LAB_RC
log=$(lab_engine_log a)
[ "$rc" = 0 ] || { echo "FAIL: engine exited with $rc"; echo "$log"; exit 1; }
fails=0
# Expected: "drop_REASON: N" for each counter badframes.py named, N frames each. Got: every
# drop counter the engine printed (it prints the non-zero ones). Both sorted by name.
want=$(echo "$sent" | sed -n 's/^sent .*: \(drop_[a-z0-9_]*\)$/\1/p' | sort | uniq -c | awk '{print $2 ": " $1}')
got=$(echo "$log" | sed -n 's/^  \(drop_[a-z0-9_]*: [0-9]*\)$/\1/p' | sort)
[ -n "$want" ] || { echo "FAIL: badframes.py named no counters"; exit 1; }
if [ "$want" = "$got" ]; then
  echo "$got" | sed 's/^/ok: /'
else
  echo "FAIL: drop counters differ from the frames sent (< expected, > counted):"
  diff <(echo "$want") <(echo "$got") | grep '^[<>]'
  fails=$((fails + 1))
fi
echo "$log" | grep -q "mbufs_in_use_at_exit: 0$" || { echo "FAIL: mbufs leaked"; fails=$((fails + 1)); }
[ "$fails" -eq 0 ] || { echo "$log"; exit 1; }
echo "ok: every malformed frame dropped and counted exactly once under its reason; engine alive; no mbuf leaked"
