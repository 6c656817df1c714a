#!/usr/bin/env bash
# A stall catcher: `--app http` on two cores (frames steered between them), rounds of 16
# parallel 4 MiB curl downloads, each checked by sha256, under a watchdog that sums the
# bytes the clients have written every 0.2 s. When nothing moves for STALL_SECS (3 s)
# while downloads are running, it saves the engine's figures (ctl stats --json), keeps
# the tcpdump capture of the tap that runs for the whole test and the engine's log, says
# where they are, and fails. (16 parallel downloads on two cores stalled once; 12,400
# downloads of stress runs did not do it again: this keeps looking.)
#
#   ROUNDS=N          rounds to run (default 40; the test stops starting rounds after
#                     TIME_BUDGET seconds, default 75, so that it stays under ~2 minutes)
#   PARALLEL=N        downloads per round (16)
#   STALL_SECS=S      how long nothing may move (3)
#   STALL_SELFTEST=1  freeze the engine (SIGSTOP) in round 2: the watchdog must fire
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
lab_init

ROUNDS=${ROUNDS:-40}
PARALLEL=${PARALLEL:-16}
STALL_SECS=${STALL_SECS:-3}
TIME_BUDGET=${TIME_BUDGET:-75}

root="$LAB_DIR/site"
mkdir -p "$root"
head -c 4M /dev/urandom >"$root/f.bin"
want=$(sha256sum "$root/f.bin" | cut -d' ' -f1)
size=$(stat -c %s "$root/f.bin")

lab_host w || exit 1
lab_engine w 10.95.0.2/24 --idle interrupt --app http --root "$root" --cores 2 || exit 1
eip=$(lab_engine_ip w)
tap=${LAB_TAP[w]}

# The capture runs for the whole test, headers only, in a ring of 4 files of 16 MB (the
# last ~300,000 frames: a stall is at the end).
pcap="$LAB_DIR/tap.pcap"
# (`ip netns exec` execs the command, so $! is tcpdump's pid; so for curl below.)
ip netns exec "${LAB_NS[w]}" tcpdump -Z root -i "$tap" -s 128 -C 16 -W 4 -w "$pcap" >"$LAB_DIR/tcpdump.log" 2>&1 &
tcpdump_pid=$!
for _ in $(seq 1 50); do
  grep -q "listening on" "$LAB_DIR/tcpdump.log" 2>/dev/null && break
  sleep 0.1
done
grep -q "listening on" "$LAB_DIR/tcpdump.log" || { echo "FAIL: tcpdump did not start:"; cat "$LAB_DIR/tcpdump.log"; exit 1; }
stop_capture() {
  kill -INT "$tcpdump_pid" 2>/dev/null
  wait "$tcpdump_pid" 2>/dev/null
}

pids=()
# stalled ROUND: save what tells why, keep the work dir, fail.
stalled() {
  local round=$1 out="$LAB_DIR/stall" left
  left=$(running)
  mkdir -p "$out"
  timeout 10 "$MIGRATORY_BIN" ctl --name "w-$LAB_ID" stats --json >"$out/stats.json" 2>&1
  lab_exec w ss -tinm >"$out/kernel-sockets.txt" 2>&1
  lab_exec w ip -s link show dev "$tap" >"$out/tap.txt" 2>&1
  lab_exec w nstat -a >"$out/nstat.txt" 2>&1
  for f in "$LAB_DIR"/r/*.res; do echo "$(basename "$f" .res): $(stat -c %s "${f%.res}.out" 2>/dev/null || echo 0) bytes"; done >"$out/progress.txt"
  stop_capture
  kill "${pids[@]}" 2>/dev/null
  cp "${LAB_LOG[w]}" "$out/engine.log"
  [ -n "${STALL_SELFTEST:-}" ] && kill -CONT "${LAB_PID[w]}"
  LAB_KEEP=1
  echo "FAIL: round $round: no byte moved for ${STALL_SECS}s with $left of $PARALLEL downloads still running"
  echo "  engine figures:  $out/stats.json"
  echo "  capture of tap:  $pcap* (tcpdump -r; the newest file ends at the stall)"
  echo "  engine log:      $out/engine.log"
  echo "  clients:         $out/progress.txt, $out/kernel-sockets.txt, $out/nstat.txt, $out/tap.txt"
  python3 - "$out/stats.json" <<'PY' || true
import json, sys
try:
    t = json.load(open(sys.argv[1]))["total"]
except ValueError:
    sys.exit(0)
keys = [k for k in sorted(t) if k.startswith("state_") or k.startswith("tcp_") and t[k]] + ["steered_out", "steered_in"]
print("  " + " ".join(f"{k}={t[k]}" for k in keys if k in t))
PY
  exit 1
}

running() {
  local n=0 p
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done
  echo "$n"
}

received() {
  du -cb "$LAB_DIR"/r/*.out 2>/dev/null | tail -1 | cut -f1
}

start=$(date +%s)
done_rounds=0 total_bytes=0 slowest=0
slowest_file="$LAB_DIR/slowest"
for round in $(seq 1 "$ROUNDS"); do
  [ $(($(date +%s) - start)) -lt "$TIME_BUDGET" ] || break
  rm -rf "$LAB_DIR/r"
  mkdir -p "$LAB_DIR/r"
  pids=()
  for i in $(seq 1 "$PARALLEL"); do
    ip netns exec "${LAB_NS[w]}" curl -sS -m 120 -o "$LAB_DIR/r/$i.out" -w '%{http_code} %{time_total}\n' \
      "http://$eip/f.bin" >"$LAB_DIR/r/$i.res" 2>&1 &
    pids+=($!)
  done
  if [ -n "${STALL_SELFTEST:-}" ] && [ "$round" = 2 ]; then
    sleep 0.1
    kill -STOP "${LAB_PID[w]}"
  fi
  # The watchdog: the clients' bytes must grow at least every STALL_SECS.
  last=-1
  moved=$(date +%s%N)
  while [ "$(running)" -gt 0 ]; do
    now_bytes=$(received)
    if [ "${now_bytes:-0}" != "$last" ]; then
      last=${now_bytes:-0}
      moved=$(date +%s%N)
    elif [ $(($(date +%s%N) - moved)) -ge $((STALL_SECS * 1000000000)) ]; then
      stalled "$round"
    fi
    sleep 0.2
  done
  for i in $(seq 1 "$PARALLEL"); do
    wait "${pids[$((i - 1))]}" || { echo "FAIL: round $round download $i: curl: $(cat "$LAB_DIR/r/$i.res")"; stop_capture; LAB_KEEP=1; echo "  work dir kept: $LAB_DIR"; exit 1; }
    read -r code _ <"$LAB_DIR/r/$i.res"
    [ "$code" = 200 ] || { echo "FAIL: round $round download $i: status $code"; exit 1; }
  done
  bad=$(sha256sum "$LAB_DIR"/r/*.out | awk -v want="$want" '$1 != want { print $2 }')
  [ -z "$bad" ] || { echo "FAIL: round $round: sha256 differs for $bad"; exit 1; }
  slowest=$(cat "$slowest_file" "$LAB_DIR"/r/*.res 2>/dev/null | awk '{ t = $NF + 0; if (t > m) m = t } END { print m + 0 }')
  echo "$slowest" >"$slowest_file"
  done_rounds=$round
  total_bytes=$((total_bytes + PARALLEL * size))
done
stop_capture
[ "$done_rounds" -ge 1 ] || { echo "FAIL: no round ran"; exit 1; }

fig=$("$MIGRATORY_BIN" ctl --name "w-$LAB_ID" stats --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
t = v["total"]
keys = ["tcp_accepted", "tcp_rto_expiries", "tcp_loss_probes", "tcp_fast_recoveries", "steered_out"]
print(" ".join(k.replace("tcp_", "") + "=" + str(t[k]) for k in keys), "cores=" + str(len(v["cores"])))')
echo "$done_rounds rounds of $PARALLEL parallel downloads ($((done_rounds * PARALLEL)) x 4 MiB, sha256 ok) in $(($(date +%s) - start))s, slowest ${slowest}s; $fig"
case "$fig" in *steered_out=0\ *) echo "FAIL: nothing was steered between the cores"; exit 1 ;; esac
lab_stop_engine w
[ "$LAB_RC" = 0 ] || { echo "FAIL: engine exited with $LAB_RC"; exit 1; }
lab_engine_log w | grep -q "mbufs_in_use_at_exit: 0$" || { echo "FAIL: mbufs leaked"; exit 1; }
echo "ok: $done_rounds rounds of $PARALLEL parallel downloads on two cores, no stall of ${STALL_SECS}s"
