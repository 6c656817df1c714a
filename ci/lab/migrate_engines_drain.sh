#!/usr/bin/env bash
# Drain (issue 10): engine A is taken out of the pool without a client noticing. Engines
# A and B share one segment with a Linux client namespace (ci/lib/cluster.sh); 200
# keep-alive HTTP clients (ci/lab/py/keepalive_clients.py) ask A for a page over and over.
#  1. `ctl --name A drain --to B`: exit 0, all 200 connections moved, the address handed
#     over; B counts 200 moves in and announces A's address (gratuitous ARP): the
#     client's neighbour entry for A's address names B's MAC address.
#  2. A stops (SIGTERM) and exits 0 with no mbuf leaked.
#  3. Every client gets at least 2 more answers on its same connection, now from B
#     alone; no client sees an error, a reset or a wrong byte.
#  4. A new connection to A's address is answered (by B, which answers ARP for it).
# B stops cleanly with no mbuf leaked. DRAIN_CORES=N runs both engines on N cores
# (migrate_engines_drain_cores.sh: 2): every core of B takes the address over.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
source "$here/../lib/cluster.sh"
lab_init

CLIENTS=${CLIENTS:-200}

fail() {
  echo "FAIL: $*"
  [ -f "$LAB_DIR/clients.out" ] && sed 's/^/  clients: /' "$LAB_DIR/clients.out" | head -20
  cluster_report
  exit 1
}
ctl() { cluster_ctl "$@"; }
counter() { cluster_counter "$@"; }
neigh_mac() { lab_exec client ip neigh show "$1" | sed -n 's/.* lladdr \([0-9a-f:]*\).*/\1/p'; }

site="$LAB_DIR/site"
mkdir -p "$site"
python3 -c 'import sys; sys.stdout.write("<!doctype html>\n<title>migratory</title>\n" + "<p>" + "x" * 2000 + "\n")' >"$site/index.html"
A_IP=10.92.0.2 B_IP=10.92.0.5
cluster_up $A_IP $B_IP --idle interrupt --app http --root "$site" --cores "${DRAIN_CORES:-1}" || fail "no cluster"
a_mac=$(cluster_mac a) b_mac=$(cluster_mac b)
echo "engine a $A_IP ($a_mac), engine b $B_IP ($b_mac)"

# The clients, asking A.
lab_exec client python3 "$here/py/keepalive_clients.py" $A_IP 80 index.html "$CLIENTS" "$LAB_DIR" \
  >"$LAB_DIR/clients.out" 2>&1 &
clients_pid=$!
for _ in $(seq 1 600); do
  [ -f "$LAB_DIR/ready" ] && break
  kill -0 "$clients_pid" 2>/dev/null || break
  sleep 0.05
done
[ "$(cat "$LAB_DIR/ready" 2>/dev/null)" = "$CLIENTS" ] ||
  fail "the clients did not all get a first answer from A (ready: $(cat "$LAB_DIR/ready" 2>/dev/null))"
held=$(ctl a conns --json | jget "sum(1 for c in v['connections'] if c['local'] == '$A_IP:80')")
[ "$held" = "$CLIENTS" ] || fail "A holds $held client connections, wanted $CLIENTS"
[ "$(neigh_mac $A_IP)" = "$a_mac" ] || fail "the client's neighbour entry for A names $(neigh_mac $A_IP), not A"
echo "$CLIENTS keep-alive clients on A"

# 1. Drain.
sleep 0.5
t0=$(date +%s%N)
json=$(ctl a drain --to "b-$LAB_ID" --json); rc=$?
t1=$(date +%s%N)
[ "$rc" = 0 ] || fail "drain: exit $rc: $json"
moved=$(jget "sum(1 for m in v['moves'] if m['moved'])" <<<"$json")
[ "$moved" = "$CLIENTS" ] || fail "drain moved $moved of $CLIENTS: $(jget "v.get('error')" <<<"$json")"
[ "$(jget "v['handed_over']" <<<"$json")" = True ] || fail "drain did not hand the address over: $json"
echo "drain: $moved connections moved in $(((t1 - t0) / 1000000)) ms; latency p50 $(jget \
  "sorted(m['latency_ns'] for m in v['moves'])[len(v['moves']) // 2] // 1000" <<<"$json") us"
[ "$(counter b migrations_in)" = "$CLIENTS" ] || fail "B migrations_in $(counter b migrations_in), wanted $CLIENTS"
for _ in $(seq 1 60); do
  [ "$(neigh_mac $A_IP)" = "$b_mac" ] && break
  sleep 0.05
done
[ "$(neigh_mac $A_IP)" = "$b_mac" ] ||
  fail "after the drain the client's neighbour entry for $A_IP names $(neigh_mac $A_IP), not B ($b_mac)"
echo "the client's neighbour entry for $A_IP names B's MAC address"
# Every core of B answers ARP for A's address (a request may reach any core's queue).
taken=$(ctl b stats --json | jget "[c.get('addresses_taken_over', 0) for c in v['cores']]")
[ "$taken" = "[$(python3 -c "print(', '.join(['1'] * ${DRAIN_CORES:-1}))")]" ] ||
  fail "B's cores took A's address over: $taken, wanted 1 on each of ${DRAIN_CORES:-1}"

# 2. A exits.
lab_stop_engine a
[ "$LAB_RC" = 0 ] || fail "engine a exit $LAB_RC after the drain"
grep -q "mbufs_in_use_at_exit: 0" <(lab_engine_log a) || fail "engine a leaked mbufs"
echo "A stopped (exit 0)"

# 3. The clients go on, answered by B alone.
touch "$LAB_DIR/mark"
sleep 1.5
touch "$LAB_DIR/stop"
wait "$clients_pid"; rc=$?
cat "$LAB_DIR/clients.out"
[ "$rc" = 0 ] || fail "a client failed"
[ "$(ctl b conns --json | jget "sum(1 for c in v['connections'] if c['local'] == '$A_IP:80')")" = 0 ] ||
  fail "B still holds client connections after they closed: $(ctl b conns)"

# 4. A new connection to A's address.
code=$(lab_exec client curl -sS -m 10 -o /dev/null -w '%{http_code}' "http://$A_IP/index.html") ||
  fail "a new connection to $A_IP failed"
[ "$code" = 200 ] || fail "a new connection to $A_IP: HTTP $code"
echo "a new connection to $A_IP is answered (by B)"
ctl b stats | grep '^peer'

lab_stop_engine b
[ "$LAB_RC" = 0 ] || fail "engine b exit $LAB_RC"
grep -q "mbufs_in_use_at_exit: 0" <(lab_engine_log b) || fail "engine b leaked mbufs"
echo "ok: $CLIENTS keep-alive clients drained from A to B; A exited; none saw an error"
