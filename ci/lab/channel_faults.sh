#!/usr/bin/env bash
# The state channel under bad input (issue 10), from a real peer outside the engines: a
# cluster member gone bad (ci/lab/py/channel_peer.py, on the Linux client's TCP, named
# as a peer `m` both engines know) opens links to engine B and sends
#  1. a hello sealed with another key: B resets the link, counts channel_rejected_bad_mac;
#  2. a proper handshake, then one heartbeat twice: B takes the first, resets the link at
#     the second, counts channel_rejected_replay;
#  3. a proper handshake, then a record cut short: B answers Abort, counts
#     channel_records_malformed and migrations_failed_invalid, adopts nothing.
# Meanwhile a download from A runs; after all three, A's and B's links are the ones they
# had (none lost), nothing moved, and a real move A -> B still works and the download
# completes with its sha256.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
source "$here/../lib/cluster.sh"
lab_init

SIZE=$((64 * 1024 * 1024))
A_IP=10.91.0.2 B_IP=10.91.0.5 M_IP=10.91.0.3
fail() {
  echo "FAIL: $*"
  for e in a b; do
    echo "--- engine $e:"; cluster_ctl "$e" stats 2>&1 | grep -i "peer\|channel\|migration" | sed 's/^/  /'
  done
  exit 1
}
root="$LAB_DIR/site"
mkdir -p "$root"
head -c "$SIZE" /dev/urandom >"$root/big.bin"
want=$(sha256sum "$root/big.bin" | cut -d' ' -f1)
cluster_up $A_IP $B_IP --idle interrupt --app http --root "$root" \
  --peer "m-$LAB_ID=$M_IP:$CLUSTER_PORT" || fail "no cluster"

out="$LAB_DIR/big.out"
lab_exec client curl -sS -m 120 --limit-rate 8M -o "$out" -w '%{http_code}' \
  "http://$A_IP/big.bin" >"$LAB_DIR/curl.res" 2>"$LAB_DIR/curl.err" &
curl_pid=$!
wait_size "$out" $((SIZE / 8)) 30 "$curl_pid" || fail "the download did not start: $(cat "$LAB_DIR/curl.err")"

figures() { # the channel figures of engine $1 that bad input may move, one line
  cluster_ctl "$1" stats --json | jget "' '.join('%s=%s' % (k, v['total'].get(k, 0)) for k in ['channel_rejected_bad_mac', 'channel_rejected_replay', 'channel_records_malformed', 'migrations_failed_invalid', 'migrations_in', 'channel_links_lost'])"
}
links_ab() { cluster_ctl a stats --json | jget "[p['links_up'] for p in v['peers'] if p['name'] == 'b-$LAB_ID']"; }
a_before=$(figures a) links_before=$(links_ab)
expect_b() { # expect_b ATTEMPT JSON-CHECK COUNTER...: run ATTEMPT, check its answer and counters +1
  local attempt=$1 check=$2; shift 2
  local before after got k
  before=$(cluster_ctl b stats --json)
  got=$(lab_exec client python3 "$here/py/channel_peer.py" "$B_IP:$CLUSTER_PORT" "m-$LAB_ID" "$CLUSTER_KEY" "$attempt") ||
    fail "$attempt: the bad peer failed: $got"
  [ "$(jget "$check" <<<"$got")" = True ] || fail "$attempt: B answered $got"
  sleep 0.2
  after=$(cluster_ctl b stats --json)
  for k in "$@"; do
    [ "$(jget "v['total'].get('$k', 0)" <<<"$after")" = $(($(jget "v['total'].get('$k', 0)" <<<"$before") + 1)) ] ||
      fail "$attempt: B's $k did not count it"
  done
  echo "$attempt: B answered $got; counted $*"
}
expect_b wrong-key "v['reset'] and v['answers'] == []" channel_rejected_bad_mac
expect_b replay "v['hello'] and v['reset'] and v['answers'] == []" channel_rejected_replay
expect_b truncated "v['hello'] and v['answers'] == ['abort']" channel_records_malformed migrations_failed_invalid

# Nothing else changed: no adoption on B, A's figures and links as they were.
[ "$(cluster_counter b migrations_in)" = 0 ] || fail "B adopted something"
[ "$(cluster_ctl b conns --json | jget "sum(1 for c in v['connections'] if c['local'].endswith(':80'))")" = 0 ] ||
  fail "B holds an HTTP connection: $(cluster_ctl b conns)"
[ "$(figures a)" = "$a_before" ] || fail "A's figures changed: $a_before -> $(figures a)"
[ "$(links_ab)" = "$links_before" ] || fail "A's links to B: $links_before -> $(links_ab)"
echo "A unchanged: $(figures a); links to B: $(links_ab)"

# The cluster still works: the download moves to B and completes.
move=$(cluster_ctl a migrate --to "b-$LAB_ID" --all --json) || fail "the move after the attacks: $move"
wait "$curl_pid" || fail "curl: $(cat "$LAB_DIR/curl.err")"
[ "$(sha256sum "$out" | cut -d' ' -f1)" = "$want" ] || fail "sha256 of the download"
echo "a move after the bad input: $(jget "[(m['moved'], m['latency_ns']) for m in v['moves']]" <<<"$move"); download complete, sha256 matches"
for e in a b; do
  lab_stop_engine "$e"
  [ "$LAB_RC" = 0 ] || fail "engine $e exit $LAB_RC"
done
echo "ok: bad MAC, replay and a truncated record from a peer are rejected, counted, and change nothing"
