#!/usr/bin/env bash
# A move the destination's application refuses, between two engines (issue 10), the Linux
# kernel as the client. Engines A and B run the HTTP application on their own taps, their
# state channel on their own TCP; A serves big.bin and both.bin, B serves both.bin only
# (another --root). curl downloads from A:
#  1. big.bin, halfway `ctl --name A migrate --to B --all`: B's application refuses the
#     state (the file is not served there): exit 1, the move reported as peer_refused; the
#     connection stays on A, which serves the download to the end, sha256 right; A counts
#     the failed move for B and one connection taken back (none moved out), B a refusal
#     (refused_in) and no migration in.
#  2. both.bin, moved to B the same way: B takes it (it has the file), the download
#     completes from B, sha256 right: a refusal is per connection, the link is still good.
# A stops with no mbuf leaked.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
source "$here/../lib/cluster.sh"
lab_init

SIZE=$((96 * 1024 * 1024))
RATE=${RATE:-24M}

fail() {
  echo "FAIL: $*"
  echo "--- curl: $(cat "$LAB_DIR"/curl*.err 2>/dev/null | tail -3)"
  cluster_report
  exit 1
}
ctl() { cluster_ctl "$@"; }
counter() { cluster_counter "$@"; }
peer() { ctl "$1" stats --json | jget "v['peers'][0]['$2']"; }

root_a="$LAB_DIR/site-a" root_b="$LAB_DIR/site-b"
mkdir -p "$root_a" "$root_b"
head -c "$SIZE" /dev/urandom >"$root_a/big.bin"
head -c "$SIZE" /dev/urandom >"$root_a/both.bin"
cp "$root_a/both.bin" "$root_b/both.bin"
A_IP=10.92.0.2 B_IP=10.92.0.5
CLUSTER_A_ARGS=(--root "$root_a")
CLUSTER_B_ARGS=(--root "$root_b")
cluster_up $A_IP $B_IP --idle interrupt --app http || fail "no cluster"
echo "channel up: $(ctl a stats | grep '^peer')"

# download N FILE: curl from A in the client namespace, in the background.
download() {
  out="$LAB_DIR/dl$1.out"
  want=$(sha256sum "$root_a/$2" | cut -d' ' -f1)
  lab_exec client curl -sS -m 120 --limit-rate "$RATE" -o "$out" \
    -w '%{http_code} %{size_download}' "http://$A_IP/$2" \
    >"$LAB_DIR/curl$1.res" 2>"$LAB_DIR/curl$1.err" &
  curl_pid=$!
}
finish() {
  wait "$curl_pid"; local rc=$?
  [ "$rc" = 0 ] || fail "curl exit $rc: $(cat "$LAB_DIR/curl$1.err")"
  [ "$(cut -d' ' -f1 "$LAB_DIR/curl$1.res")" = 200 ] || fail "HTTP status $(cat "$LAB_DIR/curl$1.res")"
  local got
  got=$(sha256sum "$out" | cut -d' ' -f1)
  [ "$got" = "$want" ] || fail "download $1: sha256 $got, wanted $want ($(size_of "$out") bytes)"
  echo "download $1: $(size_of "$out") bytes, sha256 matches"
}
holds() { # holds E: how many connections engine E lists on A's address, port 80
  ctl "$1" conns --json | jget "sum(1 for c in v['connections'] if c['local'] == '$A_IP:80')"
}

# 1. Refused by B's application: the connection stays on A.
download 1 big.bin
wait_size "$out" $((SIZE / 2)) 60 "$curl_pid" || fail "download 1 did not reach half"
json=$(ctl a migrate --to "b-$LAB_ID" --all --json); rc=$?
[ "$rc" = 1 ] || fail "a refused move: exit $rc, wanted 1: $json"
[ "$(jget "[[m['moved'], m.get('reason')] for m in v['moves']]" <<<"$json")" = '[[false, "peer_refused"]]' ] ||
  fail "a refused move: $json"
echo "refused at $(size_of "$out") bytes: $(jget "[m['error'] for m in v['moves']]" <<<"$json")"
[ "$(holds a)" = 1 ] || fail "A does not hold the connection after the refusal: $(ctl a conns)"
[ "$(holds b)" = 0 ] || fail "B holds a connection it refused: $(ctl b conns)"
finish 1
[ "$(peer a failed_out)" = 1 ] || fail "A's figures for B: failed_out $(peer a failed_out), wanted 1"
[ "$(peer b refused_in)" = 1 ] || fail "B's figures for A: refused_in $(peer b refused_in), wanted 1"
[ "$(counter b migrations_in)" = 0 ] || fail "B counts $(counter b migrations_in) migrations in"
[ "$(counter a migrations_out)" = 0 ] || fail "A counts $(counter a migrations_out) migrations out"
[ "$(counter a migrations_taken_back)" = 1 ] || fail "A took back $(counter a migrations_taken_back) connections, wanted 1"
echo "A: $(ctl a stats | grep '^peer')"
echo "B: $(ctl b stats | grep '^peer')"

# 2. A file B serves too: the same move is taken.
download 2 both.bin
wait_size "$out" $((SIZE / 2)) 60 "$curl_pid" || fail "download 2 did not reach half"
json=$(ctl a migrate --to "b-$LAB_ID" --all --json); rc=$?
[ "$rc" = 0 ] || fail "move of download 2: exit $rc: $json"
[ "$(jget "sum(1 for m in v['moves'] if m['moved'])" <<<"$json")" = 1 ] || fail "move of download 2: $json"
echo "moved at $(size_of "$out") bytes: $(jget "[(m['id'], m['latency_ns']) for m in v['moves']]" <<<"$json")"
sleep 0.3
[ "$(holds b)" = 1 ] || fail "B does not hold the moved connection: $(ctl b conns)"
finish 2
[ "$(counter b migrations_in)" = 1 ] || fail "B migrations_in $(counter b migrations_in), wanted 1"

lab_stop_engine a
[ "$LAB_RC" = 0 ] || fail "engine a exit $LAB_RC"
grep -q "mbufs_in_use_at_exit: 0" <(lab_engine_log a) || fail "engine a leaked mbufs"
echo "ok: a move B's application refused left the download on A, intact; the next move was taken"
