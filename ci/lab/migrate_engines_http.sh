#!/usr/bin/env bash
# Live migration of an HTTP download between two engines (issue 10), the Linux kernel as
# the client. Engines A and B, each on its own tap, share one segment with a client
# namespace (a bridge); their state channel runs on their own TCP (--channel, --peer,
# --cluster-key-file). curl, rate-limited to last about 9 s, downloads a 256 MiB file of
# random bytes from A; then:
#  1. halfway, `ctl --name A migrate --to B --all`: exit 0, one connection moved; the
#     download completes with the file's sha256; A counts migrations_out and frames it
#     forwarded (the client's ARP entry still names A), B migrations_in; B sends from A's
#     address.
#  2. a second download, moved A -> B -> A -> B while the bridge drops 5% of the frames
#     towards A (the client's path, and the channel's into A): complete, sha256 right.
#  3. a peer that does not exist: exit 2, one line.
#  4. B frozen (SIGSTOP), then killed (SIGKILL) while A moves a third download to it: the
#     move fails (exit 1, by reason), the connection stays on A and completes.
# A stops with no mbuf leaked. With MIGRATE_LINK=shm (migrate_engines_http_shm.sh) the
# engines' channel runs over a shared-memory link (--peer-shm) instead of their TCP: the
# same steps, and neither engine opens or accepts a TCP connection of its own.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
source "$here/../lib/cluster.sh"
lab_init

SIZE=$((256 * 1024 * 1024))
RATE=${RATE:-28M}

fail() {
  echo "FAIL: $*"
  echo "--- curl: $(cat "$LAB_DIR"/curl*.err 2>/dev/null | tail -3)"
  cluster_report
  exit 1
}
ctl() { cluster_ctl "$@"; }
counter() { cluster_counter "$@"; }

root="$LAB_DIR/site"
mkdir -p "$root"
head -c "$SIZE" /dev/urandom >"$root/big.bin"
want=$(sha256sum "$root/big.bin" | cut -d' ' -f1)
A_IP=10.91.0.2 B_IP=10.91.0.5
LINK=${MIGRATE_LINK:-tcp}
case "$LINK" in
  tcp) ;;
  shm) CLUSTER_SHM=/dev/shm/migratory-lab-$LAB_ID.link ;;
  *) echo "FAIL: MIGRATE_LINK=$LINK: expected tcp or shm"; exit 1 ;;
esac
cluster_up $A_IP $B_IP --idle interrupt --app http --root "$root" || fail "no cluster"
echo "channel up ($LINK): $(ctl a stats | grep '^peer')"

# download N: curl from A in the client namespace, in the background (pid in $curl_pid).
download() {
  out="$LAB_DIR/big$1.out"
  lab_exec client curl -sS -m 120 --limit-rate "$RATE" -o "$out" \
    -w '%{http_code} %{size_download}' "http://$A_IP/big.bin" \
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
move() { # move FROM TO: every connection of FROM to TO; checks one moved
  local json rc
  json=$(ctl "$1" migrate --to "$2-$LAB_ID" --all --json); rc=$?
  [ "$rc" = 0 ] || fail "migrate $1 -> $2: exit $rc: $json"
  [ "$(jget "sum(1 for m in v['moves'] if m['moved'])" <<<"$json")" = 1 ] || fail "migrate $1 -> $2: $json"
  echo "moved $1 -> $2 at $(size_of "$out") bytes: $(jget "[(m['id'], m['latency_ns']) for m in v['moves']]" <<<"$json")"
}

# 1. One move, halfway.
download 1
wait_size "$out" $((SIZE / 2)) 60 "$curl_pid" || fail "download 1 did not reach half"
fwd_before=$(counter a channel_frames_forwarded)
move a b
sleep 0.5
[ "$(ctl b conns --json | jget "sum(1 for c in v['connections'] if c['local'] == '$A_IP:80')")" = 1 ] ||
  fail "B does not list the connection with A's address: $(ctl b conns)"
finish 1
[ "$(counter a migrations_out)" = 1 ] || fail "A migrations_out $(counter a migrations_out), wanted 1"
[ "$(counter b migrations_in)" = 1 ] || fail "B migrations_in $(counter b migrations_in), wanted 1"
fwd=$(($(counter a channel_frames_forwarded) - fwd_before))
[ "$fwd" -gt 0 ] || fail "A forwarded no frame to B (the client still sends to A's MAC address)"
echo "A forwarded $fwd frames of the moved connection to B"
if [ "$LINK" = shm ]; then
  for e in a b; do
    [ "$(counter $e tcp_opened)" = 0 ] || fail "engine $e opened TCP connections: the channel should be on shared memory"
  done
  [ "$(counter b tcp_accepted)" = 0 ] || fail "engine b accepted TCP connections: the channel should be on shared memory"
  echo "the channel ran over shared memory: neither engine opened a TCP connection of its own"
fi
ctl a stats | grep '^peer'

# 2. A -> B -> A -> B under 5% loss towards A.
lab_wire_loss a 5 || fail "cannot set up the loss"
download 2
for step in "a b" "b a" "a b"; do
  read -r from to <<<"$step"
  grow=$(($(size_of "$out") + SIZE / 5))
  wait_size "$out" "$grow" 60 "$curl_pid" || fail "download 2 stalled before the move $from -> $to"
  move "$from" "$to"
done
finish 2
echo "loss rule dropped $(lab_wire_loss_count a) frames"
lab_exec a nft delete table bridge mglab

# 3. Refusals: a peer that does not exist.
msg=$(ctl a migrate --to nobody --all 2>&1 >/dev/null); rc=$?
[ "$rc" = 2 ] && [ "$(wc -l <<<"$msg")" = 1 ] || fail "unknown peer: exit $rc, $msg"
echo "unknown peer: exit $rc: $msg"

# 4. B frozen, then killed (SIGKILL) in the middle of a move: the move fails, the
# connection stays on A, which serves the download to the end.
download 3
wait_size "$out" $((SIZE / 3)) 60 "$curl_pid" || fail "download 3 did not reach a third"
failed_before=$(ctl a stats --json | jget "v['peers'][0]['failed_out']")
kill -STOP "${LAB_PID[b]}"
ctl a migrate --to "b-$LAB_ID" --all --json >"$LAB_DIR/move3.json" 2>"$LAB_DIR/move3.err" &
move_pid=$!
sleep 0.3
kill -KILL "${LAB_PID[b]}"
wait "${LAB_PID[b]}" 2>/dev/null
unset "LAB_PID[b]"
wait "$move_pid"; rc=$?
json=$(cat "$LAB_DIR/move3.json")
[ "$rc" = 1 ] || fail "a move to a killed peer: exit $rc, wanted 1: $json $(cat "$LAB_DIR/move3.err")"
[ "$(jget "[m['moved'] for m in v['moves']]" <<<"$json")" = "[false]" ] || fail "a move to a killed peer: $json"
echo "B killed during a move: $(jget "[(m['reason'], m['error']) for m in v['moves']]" <<<"$json")"
[ "$(ctl a conns --json | jget "sum(1 for c in v['connections'] if c['local'] == '$A_IP:80')")" = 1 ] ||
  fail "A does not hold the connection after the failed move: $(ctl a conns)"
finish 3
[ "$(ctl a stats --json | jget "v['peers'][0]['failed_out']")" = $((failed_before + 1)) ] ||
  fail "A's figures for B do not count the failed move: $(ctl a stats | grep '^peer')"
ctl a stats | grep '^peer'

for e in a; do
  lab_stop_engine "$e"
  [ "$LAB_RC" = 0 ] || fail "engine $e exit $LAB_RC"
  grep -q "mbufs_in_use_at_exit: 0" <(lab_engine_log "$e") || fail "engine $e leaked mbufs"
done
echo "ok: a download moved between engines (and back and forth under loss) completes intact"
