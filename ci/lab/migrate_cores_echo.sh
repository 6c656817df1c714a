#!/usr/bin/env bash
# Live migration of 100 busy echo connections between the two cores of an engine
# (`--cores 2 --app echo`). py/echo_migrate.py keeps every connection writing random
# chunks with random pauses and reading the echo, checking each byte as it comes back,
# until this script has finished moving:
#  1. every connection once, by id, to the other core (py/ctl_moves.py: each answer
#     moved=true from the core `conns` showed, then `conns` shows it on the new one);
#  2. `migrate --all --to-core 0`, then `migrate --all --to-core 1`: every connection
#     not already there moves, all moved=true, and `conns` then shows all on that core.
# Then each connection sends its last bytes, closes, and must have had everything echoed
# byte-exact. migrations_in and migrations_out must equal the moves reported (>= 100),
# adopted likewise, with no refusal, failure or loss; the table empties and the engine
# stops with no mbuf leaked.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
lab_init

N=100
BYTES=524288 # each connection writes at least this much

ctl() { "$MIGRATORY_BIN" ctl --name "a-$LAB_ID" "$@"; }
jget() { python3 -c 'import json,sys; v=json.load(sys.stdin); r=eval(sys.argv[1]); print(r if not isinstance(r,(dict,list)) else json.dumps(r))' "$1"; }
counter() { ctl stats --json | jget "v['total'].get('$1', 0)"; }
fail() {
  echo "FAIL: $*"
  echo "--- client:"; sed 's/^/  /' "$LAB_DIR/client.out" 2>/dev/null | tail -25
  echo "--- engine state:"; python3 "$here/py/ctl_evidence.py" "$MIGRATORY_BIN" "a-$LAB_ID" 2>&1 | sed 's/^/  /'
  lab_stop_engine a
  echo "--- engine stopped (exit $LAB_RC); its log:"
  lab_engine_log a | grep -v "qdisc\|TELEMETRY\|rte flow" | sed 's/^/  /' | tail -45
  exit 1
}
# on_cores: how many port-7 connections `conns` lists on core 0 and on core 1.
on_cores() { ctl conns --json | jget "' '.join(str(sum(1 for c in v['connections'] if c['local'].endswith(':7') and c['state'] == 'ESTABLISHED' and c['core'] == k)) for k in (0, 1))"; }

lab_host a || exit 1
lab_engine a 10.93.0.2/24 --cores 2 --idle interrupt --app echo || exit 1
eip=$(lab_engine_ip a)
stop="$LAB_DIR/stop"

lab_exec a python3 "$here/py/echo_migrate.py" "$eip" 7 "$N" --bytes "$BYTES" --chunk 4096 --pause 20 \
  --until "$stop" --timeout 60 >"$LAB_DIR/client.out" 2>&1 &
client=$!
for _ in $(seq 1 200); do
  grep -q "^ready $N$" "$LAB_DIR/client.out" && break
  kill -0 "$client" 2>/dev/null || fail "the client ended before all its connections were echoing"
  sleep 0.1
done
grep -q "^ready $N$" "$LAB_DIR/client.out" || fail "not every connection had an echo within 20 s"
read -r n0 n1 <<<"$(on_cores)"
[ $((n0 + n1)) = "$N" ] || fail "ctl conns lists $n0 + $n1 established echo connections, wanted $N"
echo "$N connections echoing: $n0 on core 0, $n1 on core 1"
b_in=$(counter migrations_in); b_out=$(counter migrations_out); b_adopted=$(counter migration_adopted_count)

# 1. Every connection once, by id.
python3 "$here/py/ctl_moves.py" "$MIGRATORY_BIN" "a-$LAB_ID" each --port 7 >"$LAB_DIR/moves.out"
rc=$?
grep -v '^latencies_ns:' "$LAB_DIR/moves.out"
[ "$rc" = 0 ] || fail "moving each connection by id"
moved=$N
kill -0 "$client" 2>/dev/null || fail "the client finished during the moves (it must keep writing until told)"

# 2. All to core 0, then all to core 1.
for k in 0 1; do
  read -r n0 n1 <<<"$(on_cores)"
  others=$((k == 0 ? n1 : n0))
  json=$(ctl migrate --all --to-core "$k" --json); rc=$?
  res=$(jget "f\"{sum(1 for m in v['moves'] if m['moved'] is True)} {sum(1 for m in v['moves'] if m['moved'] is not True)} {'error' in v}\"" <<<"$json")
  read -r ok notok err <<<"$res"
  [ "$rc" = 0 ] && [ "$notok" = 0 ] && [ "$err" = False ] ||
    fail "migrate --all --to-core $k: exit $rc, $ok moved, $notok not: $(head -c 600 <<<"$json")"
  [ "$ok" = "$others" ] || fail "migrate --all --to-core $k moved $ok, but conns listed $others on the other core"
  read -r n0 n1 <<<"$(on_cores)"
  [ "$k" = 0 ] && want="$N 0" || want="0 $N"
  [ "$n0 $n1" = "$want" ] || fail "after migrate --all --to-core $k: $n0 on core 0, $n1 on core 1"
  echo "migrate --all --to-core $k: $ok moved (all moved=true); conns: $n0 on core 0, $n1 on core 1"
  moved=$((moved + ok))
done
kill -0 "$client" 2>/dev/null || fail "the client finished during the moves (it must keep writing until told)"

# Let the connections finish: last bytes, close, echo to the end.
touch "$stop"
wait "$client"; rc=$?
sed 's/^/client: /' "$LAB_DIR/client.out" | grep -v "^client: ready"
[ "$rc" = 0 ] || fail "echo client exit $rc"

for _ in $(seq 1 40); do
  [ $(($(counter migrations_in) - b_in)) = "$moved" ] && break
  sleep 0.05
done
stats=$(ctl stats --json)
python3 - "$stats" "$moved" "$b_in" "$b_out" "$b_adopted" "$N" <<'PY' || fail "migration counters"
import json, sys
t = json.loads(sys.argv[1])["total"]
moved, b_in, b_out, b_adopted, n = map(int, sys.argv[2:7])
us = lambda ns: f"{ns / 1000:.0f}us"
d_in, d_out, d_ad = t["migrations_in"] - b_in, t["migrations_out"] - b_out, t["migration_adopted_count"] - b_adopted
print(f"migrations: reported {moved}, in +{d_in} out +{d_out} adopted +{d_ad} first_segment_count {t['migration_first_segment_count']} "
      f"redirected_segments {t['migrations_redirected_segments']} owner_updates {t['migrations_owner_updates']} "
      f"refused {t['migrations_refused_not_movable']}/{t['migrations_refused_app']}/{t['migrations_refused_other']} "
      f"failed {t['migrations_failed_invalid']}/{t['migrations_failed_table']}/{t['migrations_failed_app']} lost {t['migrations_lost']}")
print(f"latency freeze->adopted: p50 {us(t['migration_adopted_p50_ns'])} p99 {us(t['migration_adopted_p99_ns'])} max {us(t['migration_adopted_max_ns'])}; "
      f"freeze->first segment: p50 {us(t['migration_first_segment_p50_ns'])} p99 {us(t['migration_first_segment_p99_ns'])} max {us(t['migration_first_segment_max_ns'])}")
print(f"tcp: accepted {t['tcp_accepted']} retransmits {t['tcp_retransmits']} rto_expiries {t['tcp_rto_expiries']} "
      f"steered_out {t['steered_out']} steered_in {t['steered_in']}")
errs = []
if d_in < n: errs.append(f"migrations_in +{d_in}, wanted >= {n}")
if d_in != moved or d_out != moved: errs.append(f"migrations in +{d_in} / out +{d_out}, but {moved} moves reported")
if d_ad != moved: errs.append(f"migration_adopted_count +{d_ad}, wanted {moved}")
for k in ("migrations_refused_not_movable", "migrations_refused_app", "migrations_refused_other", "migrations_failed_invalid",
          "migrations_failed_table", "migrations_failed_app", "migrations_lost"):
    if t[k]: errs.append(f"{k} = {t[k]}")
if t["tcp_accepted"] != n: errs.append(f"tcp_accepted {t['tcp_accepted']}, wanted {n}")
for e in errs: print("FAIL: " + e)
sys.exit(1 if errs else 0)
PY

# The table empties (the client closed first: no TIME-WAIT here).
for _ in $(seq 1 50); do
  [ "$(counter connections)" = 0 ] && break
  sleep 0.1
done
[ "$(counter connections)" = 0 ] || fail "$(counter connections) connection(s) left in the table"
echo "table empty"

lab_stop_engine a
[ "$LAB_RC" = 0 ] || fail "engine exited with $LAB_RC"
lab_engine_log a | grep -q "mbufs_in_use_at_exit: 0$" || fail "mbufs leaked: $(lab_engine_log a | grep mbufs_in_use)"
echo "ok: $N busy echo connections moved $moved times between 2 cores (each by id, then all both ways), every byte echoed exactly; counters exact; table empty; clean stop"
