#!/usr/bin/env bash
# Load while moving (issue 10): wrk (2 threads, 256 keep-alive connections, 8 s) against
# engine A's HTTP app from the Linux client namespace; 3 s in, `ctl --name A migrate --to
# B --all` moves every connection to engine B while requests are in flight. wrk sees no
# socket error and no non-2xx answer; every connection moved (exit 0); B counts them in;
# after the move B answers the requests (it sends the segments) (A forwards the client's frames, which still
# reach A's MAC address, to B). Both engines stop cleanly with no mbuf leaked.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
source "$here/../lib/cluster.sh"
lab_init

CONNS=${CONNS:-256}

fail() {
  echo "FAIL: $*"
  [ -f "$LAB_DIR/wrk.out" ] && sed 's/^/  | /' "$LAB_DIR/wrk.out"
  for e in a b; do
    [ -n "${LAB_PID[$e]:-}" ] || continue
    echo "--- engine $e:"
    cluster_ctl "$e" stats 2>&1 | grep -i "peer\|channel\|migration\|conn" | sed 's/^/  /'
    lab_stop_engine "$e"
    echo "--- engine $e stopped (exit $LAB_RC); its log:"
    lab_engine_log "$e" | grep -v "qdisc\|TELEMETRY\|rte flow" | sed 's/^/  /' | tail -20
  done
  exit 1
}
command -v wrk >/dev/null || fail "wrk missing: run ci/setup"
ctl() { cluster_ctl "$@"; }
counter() { cluster_counter "$@"; }
held() { ctl "$1" conns --json | jget "sum(1 for c in v['connections'] if c['local'] == '$A_IP:80')"; }

site="$LAB_DIR/site"
mkdir -p "$site"
python3 -c 'import sys; sys.stdout.write("<!doctype html>\n<title>migratory</title>\n" + "<p>" + "x" * 1000 + "\n")' >"$site/index.html"
A_IP=10.93.0.2 B_IP=10.93.0.5
cluster_up $A_IP $B_IP --idle interrupt --app http --root "$site" || fail "no cluster"

lab_exec client timeout 60 wrk -t2 -c"$CONNS" -d8s --latency "http://$A_IP/index.html" \
  >"$LAB_DIR/wrk.out" 2>&1 &
wrk_pid=$!
sleep 3
on_a=$(held a)
[ "$on_a" = "$CONNS" ] || fail "A holds $on_a connections under wrk -c$CONNS"
out_a=$(counter a tcp_segments_out)
t0=$(date +%s%N)
json=$(ctl a migrate --to "b-$LAB_ID" --all --json); rc=$?
t1=$(date +%s%N)
[ "$rc" = 0 ] || fail "migrate --all under load: exit $rc: $(jget "v.get('error')" <<<"$json")"
moved=$(jget "sum(1 for m in v['moves'] if m['moved'])" <<<"$json")
[ "$moved" = "$CONNS" ] || fail "moved $moved of $CONNS connections"
echo "moved $moved connections under load in $(((t1 - t0) / 1000000)) ms; latency p50 $(jget \
  "sorted(m['latency_ns'] for m in v['moves'])[len(v['moves']) // 2] // 1000" <<<"$json") us, max $(jget \
  "max(m['latency_ns'] for m in v['moves']) // 1000" <<<"$json") us"
wait "$wrk_pid"; rc=$?
[ "$rc" = 0 ] || fail "wrk exit $rc"
sed 's/^/  | /' "$LAB_DIR/wrk.out"
python3 "$here/py/wrk_check.py" "$LAB_DIR/wrk.out" || fail "wrk figures"

[ "$(counter b migrations_in)" = "$CONNS" ] || fail "B migrations_in $(counter b migrations_in), wanted $CONNS"
# A holds none of them now: what B sends is the answers.
out_b=$(counter b tcp_segments_out)
[ "$out_b" -gt $((CONNS * 10)) ] || fail "B sent $out_b segments after the move: it answered (almost) nothing"
echo "segments sent: A $out_a before the move, B $out_b after it; A forwarded $(counter a channel_frames_forwarded) frames to B"

for e in a b; do
  lab_stop_engine "$e"
  [ "$LAB_RC" = 0 ] || fail "engine $e exit $LAB_RC"
  grep -q "mbufs_in_use_at_exit: 0" <(lab_engine_log "$e") || fail "engine $e leaked mbufs"
done
echo "ok: wrk -c$CONNS against A while all its connections moved to B: no socket error, all 2xx"
