#!/usr/bin/env bash
# Live migration of one HTTP download between the two cores of an engine
# (`--cores 2 --app http`). curl, rate-limited so that it lasts about 9 s, downloads a
# 256 MiB file of random bytes; meanwhile:
#  1. refusals, each leaving the connection where it was and serving: an unknown id
#     (exit 1, the message names the id), `--to-core 7` (non-zero exit, one error line),
#     a move to the core the connection is already on (non-zero exit, no move);
#  2. ten moves of the connection by id (`ctl migrate --conn ID --to-core K`), alternating
#     between the cores: each must report moved=true from the core it was on, `conns` must
#     then show it on the new core, and the download must make progress after each move.
# curl's copy must have the file's sha256; `ctl stats` must count exactly 10 more
# migrations_in and migrations_out and 10 adopted; the latency figures (freeze to adopted,
# freeze to the new owner's first segment) are printed. The table empties.
#  3. TIME-WAIT connections (from HTTP/1.0 requests) cannot move: `ctl conns` lists
#     them, and a move of one is refused as not_movable (exit 1) and counted, the record
#     staying where it is.
# The engine stops with no mbuf leaked.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
lab_init

MOVES=10
SIZE=$((256 * 1024 * 1024))
RATE=28M # curl --limit-rate: 256 MiB in about 9 s (the moves take about 3 s of it)

ctl() { "$MIGRATORY_BIN" ctl --name "a-$LAB_ID" "$@"; }
# jq-like: python3 EXPR over the JSON document on stdin (bound to `v`).
jget() { python3 -c 'import json,sys; v=json.load(sys.stdin); r=eval(sys.argv[1]); print(r if not isinstance(r,(dict,list)) else json.dumps(r))' "$1"; }
counter() { ctl stats --json | jget "v['total'].get('$1', 0)"; }
fail() {
  echo "FAIL: $*"
  echo "--- curl so far: $(stat_size) bytes; $(cat "$LAB_DIR/curl.err" 2>/dev/null)"
  echo "--- engine state:"; python3 "$here/py/ctl_evidence.py" "$MIGRATORY_BIN" "a-$LAB_ID" 2>&1 | sed 's/^/  /'
  lab_stop_engine a
  echo "--- engine stopped (exit $LAB_RC); its log:"
  lab_engine_log a | grep -v "qdisc\|TELEMETRY\|rte flow" | sed 's/^/  /' | tail -45
  exit 1
}
stat_size() { stat -c %s "$out" 2>/dev/null || echo 0; }
# wait_grow BYTES SECONDS: the download grows by BYTES within SECONDS (else non-zero).
wait_grow() {
  local from i
  from=$(stat_size)
  for ((i = 0; i < $2 * 20; i++)); do
    [ $(($(stat_size) - from)) -ge "$1" ] && return 0
    kill -0 "$curl_pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

root="$LAB_DIR/site"
mkdir -p "$root"
head -c "$SIZE" /dev/urandom >"$root/big.bin"
head -c 10000 /dev/urandom >"$root/small.bin"
want=$(sha256sum "$root/big.bin" | cut -d' ' -f1)
out="$LAB_DIR/big.out"

lab_host a || exit 1
lab_engine a 10.89.0.2/24 --cores 2 --idle interrupt --app http --root "$root" || exit 1
eip=$(lab_engine_ip a)

lab_exec a curl -sS -m 120 --limit-rate "$RATE" -o "$out" \
  -w '%{http_code} %{size_download} %{speed_download} %{time_total}' "http://$eip/big.bin" \
  >"$LAB_DIR/curl.res" 2>"$LAB_DIR/curl.err" &
curl_pid=$!

# The connection, from `ctl conns` (bounded wait for it to be established).
id="" core=""
for _ in $(seq 1 100); do
  line=$(ctl conns --json | jget "' '.join(f\"{c['id']} {c['core']}\" for c in v['connections'] if c['local'].endswith(':80') and c['state'] == 'ESTABLISHED')")
  if [ -n "$line" ]; then read -r id core <<<"$line"; break; fi
  sleep 0.05
done
[ -n "$id" ] || fail "no ESTABLISHED connection on port 80 in ctl conns after 5 s"
[ "$(wc -w <<<"$line")" = 2 ] || fail "more than one connection listed: $line"
wait_grow 1048576 5 || fail "the download does not start"
echo "connection $id on core $core, downloading"

# 1. Refusals: the connection stays where it is and keeps serving.
before_out=$(counter migrations_out)
bogus=0123456789abcdef
[ "$bogus" = "$id" ] && bogus=fedcba9876543210
msg=$(ctl migrate --conn "$bogus" --to-core $((1 - core)) 2>&1 >/dev/null); rc=$?
[ "$rc" = 1 ] || fail "unknown id: exit $rc, wanted 1"
[ "$(wc -l <<<"$msg")" = 1 ] && grep -q "$bogus" <<<"$msg" || fail "unknown id: the error does not name the id in one line: $msg"
echo "unknown id: exit $rc: $msg"

msg=$(ctl migrate --conn "$id" --to-core 7 2>&1 >/dev/null); rc=$?
[ "$rc" = 2 ] || fail "--to-core 7 on a 2-core engine: exit $rc, wanted 2 (a bad request)"
[ "$(wc -l <<<"$msg")" = 1 ] && grep -q "7" <<<"$msg" || fail "--to-core 7: wanted one error line naming core 7, got: $msg"
json=$(ctl migrate --conn "$id" --to-core 7 --json); rc2=$?
[ "$rc2" != 0 ] && [ "$(jget "sum(1 for m in v.get('moves', []) if m['moved'])" <<<"$json")" = 0 ] ||
  fail "--to-core 7 --json: exit $rc2, $json"
echo "--to-core 7: exit $rc: $msg"

json=$(ctl migrate --conn "$id" --to-core "$core" --json); rc=$?
[ "$rc" != 0 ] || fail "a move to the core the connection is on (core $core) exits 0: $json"
[ "$(jget "sum(1 for m in v.get('moves', []) if m['moved'])" <<<"$json")" = 0 ] || fail "a move to its own core moved something: $json"
reason=$(jget "v.get('error') or '; '.join(m.get('reason','') + ': ' + m.get('error','') for m in v['moves'])" <<<"$json")
echo "move to its own core $core: exit $rc: $reason"
case "$reason" in
  *"already on core $core"*) ;;
  *) fail "a move to its own core: wanted 'already on core $core', got: $reason" ;;
esac

now=$(ctl conns --json | jget "[c['core'] for c in v['connections'] if c['id'] == '$id']")
[ "$now" = "[$core]" ] || fail "after the refused moves the connection is on cores $now, wanted [$core]"
[ "$(counter migrations_out)" = "$before_out" ] || fail "a refused move counted migrations_out"
wait_grow 1048576 5 || fail "the download stalled after the refused moves"
echo "refused moves: connection still on core $core and downloading"

# 2. Ten moves, alternating (py/ctl_moves.py checks each answer, `conns`, and that the
# download grows by 2 MiB within 5 s after each move).
b_in=$(counter migrations_in); b_out=$(counter migrations_out); b_adopted=$(counter migration_adopted_count)
python3 "$here/py/ctl_moves.py" "$MIGRATORY_BIN" "a-$LAB_ID" alternate "$id" "$MOVES" \
  --watch "$out" --size "$SIZE" --grow 2097152 --gap 0.1 >"$LAB_DIR/moves.out"
rc=$?
grep -v '^latencies_ns:' "$LAB_DIR/moves.out"
[ "$rc" = 0 ] || fail "moving the connection (see above)"
lat=$(sed -n 's/^latencies_ns: //p' "$LAB_DIR/moves.out")
still=$(stat_size)
kill -0 "$curl_pid" 2>/dev/null || fail "the download ended before the moves did (lower RATE)"

wait "$curl_pid"; rc=$?
[ "$rc" = 0 ] || fail "curl exit $rc: $(cat "$LAB_DIR/curl.err")"
read -r code size speed secs <"$LAB_DIR/curl.res"
[ "$code" = 200 ] || fail "status $code"
[ "$size" = "$SIZE" ] || fail "$size bytes, wanted $SIZE"
got=$(sha256sum "$out" | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "sha256 $got, wanted $want"
echo "download: 256 MiB in ${secs}s (limit $RATE/s; $((still / 1048576)) MiB done when the moves ended), sha256 matches"

# Counters: exactly the moves made. The cores publish every few ms: wait for them.
for _ in $(seq 1 40); do
  [ $(($(counter migrations_in) - b_in)) = "$MOVES" ] && [ $(($(counter migration_adopted_count) - b_adopted)) = "$MOVES" ] && break
  sleep 0.05
done
stats=$(ctl stats --json)
python3 - "$stats" "$MOVES" "$b_in" "$b_out" "$b_adopted" "$lat" <<'PY' || fail "migration counters"
import json, sys
t = json.loads(sys.argv[1])["total"]
moves, b_in, b_out, b_adopted = map(int, sys.argv[2:6])
lat = sorted(int(x) for x in sys.argv[6].split())
us = lambda ns: f"{ns / 1000:.0f}us"
print(f"migrations: in +{t['migrations_in'] - b_in} out +{t['migrations_out'] - b_out} adopted_count {t['migration_adopted_count']} "
      f"first_segment_count {t['migration_first_segment_count']} redirected_segments {t['migrations_redirected_segments']} "
      f"owner_updates {t['migrations_owner_updates']} refused_not_movable {t['migrations_refused_not_movable']} "
      f"refused_app {t['migrations_refused_app']} refused_other {t['migrations_refused_other']} lost {t['migrations_lost']}")
print(f"latency freeze->adopted: p50 {us(t['migration_adopted_p50_ns'])} p99 {us(t['migration_adopted_p99_ns'])} max {us(t['migration_adopted_max_ns'])}; "
      f"freeze->first segment: p50 {us(t['migration_first_segment_p50_ns'])} p99 {us(t['migration_first_segment_p99_ns'])} max {us(t['migration_first_segment_max_ns'])}; "
      f"ctl replies: min {us(lat[0])} median {us(lat[len(lat) // 2])} max {us(lat[-1])}")
print(f"tcp: retransmits {t['tcp_retransmits']} rto_expiries {t['tcp_rto_expiries']} steered_out {t['steered_out']} steered_in {t['steered_in']}")
errs = []
if t["migrations_in"] - b_in != moves: errs.append(f"migrations_in +{t['migrations_in'] - b_in}, wanted +{moves}")
if t["migrations_out"] - b_out != moves: errs.append(f"migrations_out +{t['migrations_out'] - b_out}, wanted +{moves}")
if t["migration_adopted_count"] - b_adopted != moves or t["migration_adopted_count"] != moves:
    errs.append(f"migration_adopted_count {t['migration_adopted_count']}, wanted {moves}")
if t["migration_first_segment_count"] != moves:
    errs.append(f"migration_first_segment_count {t['migration_first_segment_count']}, wanted {moves}")
if t["migrations_lost"]: errs.append(f"migrations_lost {t['migrations_lost']}")
for e in errs: print("FAIL: " + e)
sys.exit(1 if errs else 0)
PY

# The table empties (curl closed).
for _ in $(seq 1 50); do
  [ "$(counter connections)" = 0 ] && break
  sleep 0.1
done
[ "$(counter connections)" = 0 ] || fail "$(counter connections) connection(s) left in the table"

# 3. TIME-WAIT, a state in which a connection does not move. HTTP/1.0 requests leave the
# engine (which closes first) in TIME-WAIT, as compact records; `conns` lists them, and
# moving one is refused as not_movable (exit 1), counted, and the record stays.
b_nm=$(counter migrations_refused_not_movable); b_out=$(counter migrations_out)
for _ in 1 2 3; do
  code=$(lab_exec a curl -sS -m 10 --http1.0 -o /dev/null -w '%{http_code}' "http://$eip/small.bin") && [ "$code" = 200 ] ||
    fail "HTTP/1.0 request: $code"
done
for _ in $(seq 1 40); do
  [ "$(counter state_time_wait)" -ge 3 ] && break
  sleep 0.05
done
tw=$(counter state_time_wait)
[ "$tw" -ge 3 ] || fail "3 HTTP/1.0 requests left $tw connections in TIME-WAIT"
twid=$(ctl conns --json | jget "' '.join(c['id'] + ':' + str(c['core']) for c in v['connections'] if c['state'] == 'TIME-WAIT')")
[ -n "$twid" ] || fail "ctl conns lists none of the $tw TIME-WAIT connections"
read -r first _ <<<"$twid"
twc=${first#*:}; first=${first%:*}
json=$(ctl migrate --conn "$first" --to-core $((1 - twc)) --json); rc=$?
[ "$rc" = 1 ] && [ "$(jget "[m['reason'] for m in v['moves'] if not m['moved']]" <<<"$json")" = '["not_movable"]' ] ||
  fail "moving TIME-WAIT connection $first: exit $rc: $json"
for _ in $(seq 1 40); do [ "$(counter migrations_refused_not_movable)" -gt "$b_nm" ] && break; sleep 0.05; done
[ "$(counter migrations_refused_not_movable)" = $((b_nm + 1)) ] || fail "the not_movable refusal was not counted"
[ "$(counter migrations_out)" = "$b_out" ] || fail "a TIME-WAIT record moved"
ctl conns --json | jget "[c['core'] for c in v['connections'] if c['id'] == '$first']" | grep -q "$twc" ||
  fail "the TIME-WAIT record $first is no longer listed on core $twc"
echo "TIME-WAIT: $first refused and still on core $twc: $(jget "v['moves'][0]['error']" <<<"$json")"

lab_stop_engine a
[ "$LAB_RC" = 0 ] || fail "engine exited with $LAB_RC"
lab_engine_log a | grep -q "mbufs_in_use_at_exit: 0$" || fail "mbufs leaked: $(lab_engine_log a | grep mbufs_in_use)"
echo "ok: 256 MiB download moved $MOVES times between 2 cores, sha256 ok, counters exact; unknown id, core 7 and own-core moves refused with the connection serving on; TIME-WAIT not moved; clean stop"
