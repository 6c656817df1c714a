#!/usr/bin/env bash
# The stock iperf3 client (Debian's) against `--app iperf3`: 5 s forward and 5 s reverse
# (-R) succeed, and the throughput the client reports is printed; both ends' byte counts
# agree. Then: 3 parallel streams; a second client while a test runs is told the server
# is busy; UDP is refused with iperf3's own error. The table empties and the engine stops
# with no mbuf leaked.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
lab_init

fail() { echo "FAIL: $*"; lab_engine_log a | grep -v '^  ' | tail -20; exit 1; }
command -v iperf3 >/dev/null || { echo "FAIL: iperf3 missing: run ci/setup"; exit 1; }

lab_host a || exit 1
lab_engine a 10.84.0.2/24 --idle interrupt --app iperf3 || exit 1
eip=$(lab_engine_ip a)

# run NAME ARGS...: one iperf3 run with JSON output; prints and checks its figures.
run() {
  local name=$1; shift
  local json="$LAB_DIR/iperf3-$name.json"
  lab_exec a timeout 60 iperf3 -c "$eip" -J "$@" >"$json" 2>&1 || { cat "$json"; fail "$name: iperf3 $* failed"; }
  python3 - "$name" "$json" <<'PY' || fail "$name: figures"
import json, sys
name, path = sys.argv[1], sys.argv[2]
v = json.load(open(path))
if "error" in v:
    sys.exit(f"{name}: iperf3 reports: {v['error']}")
end = v["end"]
sent, recv = end["sum_sent"], end["sum_received"]
rev = v["start"]["test_start"].get("reverse", 0)
print(f"{name}: {'server -> client' if rev else 'client -> server'}, {len(end['streams'])} stream(s): "
      f"sender {sent['bytes'] / 2**20:.1f} MiB in {sent['seconds']:.2f} s = {sent['bits_per_second'] / 1e6:.0f} Mbit/s, "
      f"receiver {recv['bytes'] / 2**20:.1f} MiB in {recv['seconds']:.2f} s = {recv['bits_per_second'] / 1e6:.0f} Mbit/s")
assert sent["bytes"] > 0 and recv["bytes"] > 0, "no data moved"
# What the receiver counted is what the sender sent, bar what was still in the sender's
# buffers or in flight at the end (a few MiB at most).
assert recv["bytes"] <= sent["bytes"] * 1.02, "receiver counted more than was sent"
assert recv["bytes"] >= sent["bytes"] * 0.9 or sent["bytes"] - recv["bytes"] <= 8 << 20, \
    "receiver counted much less than was sent"
if rev:
    # The engine sent: the client shows the engine's retransmission count, a number
    # (iperf3 prints -1 per stream when the sender does not report it).
    retr = sent.get("retransmits")
    assert isinstance(retr, int) and retr >= 0, f"sender retransmits {retr!r}"
    print(f"{name}: the engine reports {retr} retransmission(s)")
with open(path + ".rate", "w") as f:
    f.write(f"{recv['bits_per_second'] / 1e6:.0f}")
PY
}

run forward -t 5 || exit 1
run reverse -t 5 -R || exit 1
run parallel -t 2 -P 3 || exit 1
fwd=$(cat "$LAB_DIR/iperf3-forward.json.rate")
rev=$(cat "$LAB_DIR/iperf3-reverse.json.rate")

# One test at a time: a second client is turned away while the first runs.
lab_exec a timeout 30 iperf3 -c "$eip" -t 3 >"$LAB_DIR/first.txt" 2>&1 &
first=$!
sleep 1
busy=$(lab_exec a timeout 10 iperf3 -c "$eip" -t 1 2>&1)
wait "$first" || { cat "$LAB_DIR/first.txt"; fail "the first client failed while a second one was refused"; }
echo "$busy" | grep -q "server is busy running a test" || fail "second client not refused: $busy"
echo "busy: a second client was told: $(echo "$busy" | grep -o 'the server is busy.*')"

# UDP is not served: the client gets iperf3's own error, and the server serves on.
udp=$(lab_exec a timeout 10 iperf3 -c "$eip" -u -t 1 2>&1)
echo "$udp" | grep -q "not implemented yet" || fail "UDP not refused as expected: $udp"
echo "udp: refused: $(echo "$udp" | grep -o 'error - .*')"
run after-refusal -t 1 -R || exit 1

# Everything closed (what the server closed first waits in TIME-WAIT).
stats=""
for _ in $(seq 1 50); do
  stats=$("$MIGRATORY_BIN" ctl --name "a-$LAB_ID" stats --json) || fail "ctl stats"
  python3 -c 'import json,sys; t=json.loads(sys.argv[1])["total"]; sys.exit(0 if sum(v for k, v in t.items() if k.startswith("state_") and k != "state_time_wait")==0 else 1)' "$stats" && break
  sleep 0.1
done
python3 - "$stats" <<'PY' || fail "connections left open"
import json, sys
t = json.loads(sys.argv[1])["total"]
live = sum(v for k, v in t.items() if k.startswith("state_") and k != "state_time_wait")
print(f"engine: accepted={t['tcp_accepted']} live={live} retransmits={t['tcp_retransmits']} "
      f"fast_recoveries={t['tcp_fast_recoveries']} rto_expiries={t['tcp_rto_expiries']}")
assert live == 0, f"{live} connections still open"
PY

lab_stop_engine a
[ "$LAB_RC" = 0 ] || fail "engine exited with $LAB_RC"
lab_engine_log a | grep '^iperf3: ' | sed 's/^/  engine: /'
lab_engine_log a | grep -q "mbufs_in_use_at_exit: 0$" || fail "mbufs leaked"
echo "ok: iperf3 (stock client $(iperf3 --version | head -1 | cut -d' ' -f2)): forward $fwd Mbit/s, reverse $rev Mbit/s over 5 s; parallel streams, busy refusal and UDP refusal as iperf3 expects; clean stop"
