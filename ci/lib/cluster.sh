# Two engines of one cluster on one segment with a Linux client: issue 10's lab, shared
# by the engine-to-engine lab tests and ci/demo. Source after ci/lib/lab.sh and lab_init.
#
#   cluster_up A_IP B_IP [SERVE ARGS...]  engine a (A_IP/24) and engine b (B_IP/24) in
#                                  host a's namespace, each on its own tap, on one bridge
#                                  with the Linux namespace `client` (.3 of the subnet);
#                                  their state channel on port $CLUSTER_PORT of their own
#                                  TCP under a fresh cluster key ($CLUSTER_KEY). Waits
#                                  (10 s) until each sees the other alive with a link
#                                  each way. SERVE ARGS go to both engines, then the
#                                  arrays CLUSTER_A_ARGS and CLUSTER_B_ARGS (if set) to
#                                  engine a and engine b alone. With
#                                  CLUSTER_SHM=FILE the engines are joined by the
#                                  shared-memory link FILE (--peer-shm) instead of TCP.
#   cluster_ctl E ARGS...          `migratory ctl` for engine E (a or b)
#   cluster_counter E NAME         engine E's counter NAME (0 if it has none)
#   cluster_mac E                  engine E's MAC address (from its start-up line)
#   cluster_report                 after a failure: each running engine's connections and
#                                  peer figures, then stops both and shows their logs' tails
#   jget EXPR                      evaluates EXPR with v = the JSON on stdin; prints it
#   size_of FILE                   FILE's size in bytes (0 if it does not exist)
#   wait_size FILE BYTES SECS PID  FILE reaches BYTES within SECS while PID runs

CLUSTER_PORT=${CLUSTER_PORT:-7000}

jget() {
  python3 -c 'import json,sys; v=json.load(sys.stdin); r=eval(sys.argv[1]); print(r if not isinstance(r,(dict,list)) else json.dumps(r))' "$1"
}

size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

wait_size() {
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    [ "$(size_of "$1")" -ge "$2" ] && return 0
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

cluster_ctl() {
  local e=$1; shift
  "$MIGRATORY_BIN" ctl --name "$e-$LAB_ID" "$@"
}

cluster_counter() {
  cluster_ctl "$1" stats --json | jget "v['total'].get('$2', 0)"
}

cluster_mac() {
  sed -n 's/^migratory: engine .* mac \([0-9a-f:]*\) .*/\1/p' "${LAB_LOG[$1]}" | head -1
}

cluster_report() {
  local e
  for e in a b; do
    [ -n "${LAB_PID[$e]:-}" ] || continue
    echo "--- engine $e:"
    python3 "$(dirname "${BASH_SOURCE[0]}")/../lab/py/ctl_evidence.py" "$MIGRATORY_BIN" "$e-$LAB_ID" 2>&1 | sed 's/^/  /'
    "$MIGRATORY_BIN" ctl --name "$e-$LAB_ID" stats 2>&1 | grep -i "peer\|channel\|migration" | sed 's/^/  /'
  done
  for e in a b; do
    lab_stop_engine "$e"
    echo "--- engine $e stopped (exit $LAB_RC); its log:"
    lab_engine_log "$e" | grep -v "qdisc\|TELEMETRY\|rte flow" | sed 's/^/  /' | tail -30
  done
}

cluster_up() {
  local a_ip=$1 b_ip=$2; shift 2
  local key
  key=$(lab_cluster_key)
  CLUSTER_KEY=$key
  lab_host a || return 1
  local shm_a=() shm_b=()
  if [ -n "${CLUSTER_SHM:-}" ]; then
    shm_a=(--peer-shm "b-$LAB_ID=$CLUSTER_SHM")
    shm_b=(--peer-shm "a-$LAB_ID=$CLUSTER_SHM")
  fi
  lab_engine a "$a_ip/24" "$@" ${CLUSTER_A_ARGS[@]+"${CLUSTER_A_ARGS[@]}"} --channel "$a_ip:$CLUSTER_PORT" \
    --peer "b-$LAB_ID=$b_ip:$CLUSTER_PORT" "${shm_a[@]}" --cluster-key-file "$key" || return 1
  lab_peer a client || return 1
  lab_alias b a
  lab_engine b "$b_ip/24" "$@" ${CLUSTER_B_ARGS[@]+"${CLUSTER_B_ARGS[@]}"} --channel "$b_ip:$CLUSTER_PORT" \
    --peer "a-$LAB_ID=$a_ip:$CLUSTER_PORT" "${shm_b[@]}" --cluster-key-file "$key" || return 1
  lab_bridge_join b a || return 1
  local up="any(p['name'] == '%s-$LAB_ID' and p['alive'] and p['links_up'] >= 2 for p in v['peers'])" _
  # shellcheck disable=SC2059
  for _ in $(seq 1 100); do
    [ "$(cluster_ctl a stats --json | jget "$(printf "$up" b)") $(cluster_ctl b stats --json | jget "$(printf "$up" a)")" = "True True" ] &&
      return 0
    sleep 0.1
  done
  lab_fail "the channel between engines a and b did not come up in 10 s"
  return 1
}
