# The namespace lab, shared by ci/test's lab tests and ci/demo. Source it from bash.
#
# Each lab host is a network namespace in which an engine runs (`ip netns exec`), so that
# its net_tap device is created inside the namespace and the Linux kernel there is the
# real, independent peer. Names are unique per process so tests can run side by side,
# and lab_cleanup (installed as an EXIT trap by lab_init) tears everything down even
# when a test fails.
#
#   lab_init                       set up traps and a work dir ($LAB_DIR)
#   lab_host NAME                  create namespace ${LAB_NS[NAME]} (IPv6 off)
#   lab_engine NAME IP/PFX [ARGS]  start `migratory serve` in host NAME on a fresh tap,
#                                  wait for the tap, give the kernel side .1 of the subnet
#   lab_kernel_ip NAME             the kernel's address in host NAME
#   lab_exec NAME CMD...           run a command in host NAME's namespace
#   lab_engine_log NAME            the engine's output so far
#   lab_stop_engine NAME           SIGTERM the engine, wait; its exit code in $LAB_RC
#   lab_peer NAME PEER             a client namespace PEER bridged to host NAME's engine
#   lab_wire_loss NAME PERCENT     nftables on that bridge drops PERCENT% of the frames
#                                  towards the engine (this kernel has no netem)
#   lab_tap_queue NAME FRAMES      the kernel-side queue of NAME's tap (checked)
#   lab_tap_drops NAME             frames towards the engine its tap's queue dropped
#   lab_alias NAME HOST            name NAME a second engine in host HOST's namespace
#   lab_bridge_join NAME HOST      put engine NAME's tap on HOST's bridge (see lab_peer):
#                                  engines of one lab on one segment
#   lab_cluster_key                a fresh cluster key file (mode 600); prints its path
#   lab_cleanup                    stop every engine, delete every namespace

LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The engine binary: $MIGRATORY_BIN if set, else the newer of the release and debug
# builds (ci/test builds release: a debug engine sharing two cores with its clients is
# slow enough to cause spurious retransmission timeouts).
if [ -z "${MIGRATORY_BIN:-}" ]; then
  MIGRATORY_BIN=$LAB_ROOT/target/release/migratory
  if [ "$LAB_ROOT/target/debug/migratory" -nt "$MIGRATORY_BIN" ]; then
    MIGRATORY_BIN=$LAB_ROOT/target/debug/migratory
  fi
fi
LAB_ID="$$"
# Frames the kernel side of a tap holds for the engine: its txqueuelen, the size of the
# tun driver's ring per queue. A full ring drops the frame (the tap's TX dropped counter;
# the qdisc sees nothing). net_tap leaves it at 1,000, and 32 parallel 4 MiB downloads
# from one core then lose 13-22% of their ACKs there: the kernel acknowledges each
# segment while the engine is still writing its burst, so the ring holds every ACK in
# flight, up to one per segment (quick ACKs) plus window updates for every bulk
# connection: 2 x connections x send buffer / MSS, 11,600 for 32 downloads with 256 KiB
# buffers. Tests that want loss ask for it (lab_wire_loss, --fault, lab_tap_queue).
LAB_TAP_QUEUE=${LAB_TAP_QUEUE:-65536}
declare -gA LAB_NS=() LAB_TAP=() LAB_PID=() LAB_KIP=() LAB_EIP=() LAB_LOG=() LAB_PFX=()
LAB_HOSTS=()
LAB_ENGINES=0

lab_fail() { echo "lab: $*" >&2; return 1; }

lab_init() {
  [ "$(id -u)" -eq 0 ] || { echo "lab: needs root (network namespaces, tap devices)" >&2; exit 1; }
  command -v ip >/dev/null || { echo "lab: iproute2 missing: run ci/setup" >&2; exit 1; }
  [ -x "$MIGRATORY_BIN" ] || { echo "lab: $MIGRATORY_BIN not built (cargo build --release)" >&2; exit 1; }
  echo "lab: engine binary $MIGRATORY_BIN" >&2
  LAB_DIR=$(mktemp -d "/tmp/mglab.$LAB_ID.XXXX")
  trap lab_cleanup EXIT
  trap 'exit 130' INT TERM
}

# Creates host NAME (a namespace, $LAB_NS[NAME]), with IPv6 off: the kernel would
# otherwise send neighbour discovery and MLD over every link (the engine counts them as
# drop_ipv6) at moments no test controls, and tests that count drops exactly
# (ci/lab/malformed.sh) need a quiet link. `default` covers the interfaces created later
# (the engine's tap, veths, bridges). Not in a subshell: it records state.
lab_host() {
  local name=$1
  local ns="mg-$name-$LAB_ID"
  ip netns add "$ns" || { lab_fail "cannot create namespace $ns"; return 1; }
  if [ -d /proc/sys/net/ipv6 ]; then
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
      net.ipv6.conf.default.disable_ipv6=1 >/dev/null ||
      { ip netns del "$ns"; lab_fail "cannot disable IPv6 in namespace $ns"; return 1; }
  fi
  ip -n "$ns" link set lo up
  LAB_NS[$name]=$ns
  LAB_HOSTS+=("$name")
}

lab_exec() {
  local name=$1; shift
  ip netns exec "${LAB_NS[$name]}" "$@"
}

lab_kernel_ip() { echo "${LAB_KIP[$1]}"; }
lab_engine_ip() { echo "${LAB_EIP[$1]}"; }
lab_engine_log() { cat "${LAB_LOG[$1]}" 2>/dev/null; }

# lab_engine NAME IP/PREFIX [serve args...] [-- extra EAL args]
lab_engine() {
  local name=$1 cidr=$2; shift 2
  local ns=${LAB_NS[$name]:-}
  [ -n "$ns" ] || { lab_fail "no host $name"; return 1; }
  local tap="mgt$((LAB_ID % 100000))x$LAB_ENGINES"
  LAB_ENGINES=$((LAB_ENGINES + 1))
  tap=${tap:0:15}
  local ip=${cidr%/*} pfx=${cidr#*/}
  # The kernel side takes .1 of the engine's subnet (the engine must not use .1).
  local kip
  kip=$(python3 -c "import ipaddress,sys; n=ipaddress.ip_interface(sys.argv[1]).network; print(next(iter(n.hosts())))" "$cidr")
  local serve_args=() eal_extra=()
  while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then shift; eal_extra=("$@"); break; fi
    serve_args+=("$1"); shift
  done
  # One lcore per --cores (default 1), from core 0 up.
  local lcores=0 i
  for ((i = 0; i < ${#serve_args[@]}; i++)); do
    if [ "${serve_args[$i]}" = "--cores" ]; then lcores="0-$(( ${serve_args[$((i + 1))]} - 1 ))"; fi
  done
  local log="$LAB_DIR/engine-$name.log"
  LAB_LOG[$name]=$log
  ip netns exec "$ns" "$MIGRATORY_BIN" serve --ip "$cidr" --name "$name-$LAB_ID" "${serve_args[@]}" -- \
    -l "$lcores" --no-huge -m 512 --no-pci --file-prefix="mg-$name-$LAB_ID" --log-level=lib.eal:error \
    "--vdev=net_tap0,iface=$tap" "${eal_extra[@]}" >"$log" 2>&1 &
  LAB_PID[$name]=$!
  LAB_TAP[$name]=$tap
  LAB_KIP[$name]=$kip
  LAB_EIP[$name]=$ip
  LAB_PFX[$name]=$pfx
  # Wait for the engine's start-up line (its tap then exists and the port is started).
  local i
  for i in $(seq 1 200); do
    if ! kill -0 "${LAB_PID[$name]}" 2>/dev/null; then
      echo "lab: engine $name exited during start-up:" >&2; sed 's/^/  | /' "$log" >&2
      return 1
    fi
    grep -q "^migratory: engine .* serving" "$log" && ip -n "$ns" link show "$tap" >/dev/null 2>&1 && break
    sleep 0.05
  done
  if ! grep -q "^migratory: engine .* serving" "$log"; then
    echo "lab: engine $name did not come up in 10 s:" >&2; sed 's/^/  | /' "$log" >&2
    return 1
  fi
  ip -n "$ns" addr add "$kip/$pfx" dev "$tap" || { lab_fail "cannot address $tap"; return 1; }
  lab_tap_queue "$name" "$LAB_TAP_QUEUE" || return 1
  ip -n "$ns" link set "$tap" up || { lab_fail "cannot bring $tap up"; return 1; }
}

# lab_tap_queue NAME FRAMES: the kernel-side queue of host NAME's tap (towards the
# engine), checked: a silently refused change would leave net_tap's 1,000 frames.
lab_tap_queue() {
  local name=$1 want=$2 ns=${LAB_NS[$1]} tap=${LAB_TAP[$1]} got
  ip -n "$ns" link set "$tap" txqueuelen "$want" || { lab_fail "cannot set the queue of $tap to $want"; return 1; }
  got=$(ip -n "$ns" -o link show dev "$tap" | sed -n 's/.* qlen \([0-9]*\).*/\1/p')
  [ "$got" = "$want" ] || { lab_fail "$tap queue is ${got:-unknown} frames, wanted $want"; return 1; }
}

# Frames towards host NAME's engine that the kernel side of its tap dropped (queue full).
lab_tap_drops() {
  lab_exec "$1" cat "/sys/class/net/${LAB_TAP[$1]}/statistics/tx_dropped"
}

# A random locally administered unicast MAC address.
lab_random_mac() {
  python3 -c 'import os; b = bytearray(os.urandom(6)); b[0] = (b[0] & 0xfc) | 0x02; print(":".join(f"{x:02x}" for x in b))'
}

# lab_peer NAME PEER: a second namespace PEER whose kernel reaches host NAME's engine
# through a bridge in NAME (the engine's tap and a veth to PEER are its ports; the
# kernel address of NAME moves from the tap to the bridge). PEER's address is .3 of the
# engine's subnet, in $LAB_KIP[PEER]. Traffic between PEER and the engine crosses the
# bridge, where lab_wire_loss can drop it without either sender knowing.
lab_peer() {
  local name=$1 peer=$2
  local ns=${LAB_NS[$name]} tap=${LAB_TAP[$name]}
  lab_host "$peer" || return 1
  local pns=${LAB_NS[$peer]}
  local pfx=${LAB_PFX[$name]} kip=${LAB_KIP[$name]}
  local pip
  pip=$(python3 -c "import ipaddress,sys; n=ipaddress.ip_interface(sys.argv[1]).network; print(list(n.hosts())[2])" "${LAB_EIP[$name]}/$pfx")
  # net_tap gives the kernel side of the tap the engine's own MAC address. A bridge
  # takes frames to its ports' addresses as its own, so give both new ones first.
  ip -n "$ns" link set "$tap" address "$(lab_random_mac)"
  ip -n "$ns" link add br0 address "$(lab_random_mac)" type bridge || { lab_fail "no bridge support"; return 1; }
  ip -n "$ns" link add vp0 type veth peer name vp1 netns "$pns" || { lab_fail "no veth support"; return 1; }
  ip -n "$ns" addr del "$kip/$pfx" dev "$tap"
  ip -n "$ns" link set "$tap" master br0
  ip -n "$ns" link set vp0 master br0
  ip -n "$ns" addr add "$kip/$pfx" dev br0
  ip -n "$ns" link set br0 up
  ip -n "$ns" link set vp0 up
  ip -n "$pns" addr add "$pip/$pfx" dev vp1
  ip -n "$pns" link set vp1 txqueuelen 10000
  ip -n "$pns" link set vp1 up
  LAB_KIP[$peer]=$pip
}

# lab_alias NAME HOST: NAME is another engine in HOST's namespace (lab_engine NAME then
# starts it there, on a tap of its own).
lab_alias() {
  local name=$1 host=$2
  [ -n "${LAB_NS[$host]:-}" ] || { lab_fail "no host $host"; return 1; }
  LAB_NS[$name]=${LAB_NS[$host]}
}

# lab_bridge_join NAME HOST: engine NAME's tap joins the bridge of host HOST (made by
# lab_peer), so that the engines, HOST's kernel and the peer share one segment. The
# kernel address lab_engine gave NAME's tap goes (the bridge holds HOST's).
lab_bridge_join() {
  local name=$1 host=$2
  local ns=${LAB_NS[$host]} tap=${LAB_TAP[$name]}
  ip -n "$ns" link show br0 >/dev/null 2>&1 || { lab_fail "host $host has no bridge (lab_peer first)"; return 1; }
  ip -n "$ns" addr flush dev "$tap"
  ip -n "$ns" link set "$tap" address "$(lab_random_mac)"
  ip -n "$ns" link set "$tap" master br0 || { lab_fail "cannot put $tap on br0"; return 1; }
  ip -n "$ns" link set "$tap" up
  LAB_KIP[$name]=${LAB_KIP[$host]}
}

# A cluster key for engines' --cluster-key-file: 32 random bytes as hex, mode 600.
lab_cluster_key() {
  local f="$LAB_DIR/cluster.key"
  (umask 077; python3 -c 'import os; print(os.urandom(32).hex())' >"$f")
  echo "$f"
}

# lab_wire_loss NAME PERCENT: the bridge of host NAME (see lab_peer) drops PERCENT% of
# the frames it forwards towards the engine: loss on the wire, which the sender only
# learns of from TCP. (nftables in the sender's own output path would not do: a drop
# there is reported back to TCP, which just sends again, with no loss recovery at all.)
lab_wire_loss() {
  local name=$1 pct=$2
  lab_exec "$name" nft -f - <<NFT || { lab_fail "nftables rule failed"; return 1; }
table bridge mglab {
  chain wireloss {
    type filter hook forward priority 0; policy accept;
    ip daddr ${LAB_EIP[$name]} numgen random mod 100 < $pct counter drop
  }
}
NFT
}

# Frames the wire-loss rule of host NAME dropped so far.
lab_wire_loss_count() {
  lab_exec "$1" nft list chain bridge mglab wireloss 2>/dev/null | sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | head -1
}

# Stops the engine with SIGTERM and sets LAB_RC to its exit code (124 if it had to be
# killed). Call it directly, not in $(...): only this shell can wait for the engine.
lab_stop_engine() {
  local name=$1 pid=${LAB_PID[$1]:-}
  LAB_RC=0
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  local i
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    LAB_RC=124
  else
    wait "$pid" 2>/dev/null || LAB_RC=$?
  fi
  unset "LAB_PID[$name]"
  return 0
}

lab_cleanup() {
  local name
  for name in "${!LAB_PID[@]}"; do
    lab_stop_engine "$name"
  done
  for name in "${LAB_HOSTS[@]}"; do
    ip netns del "${LAB_NS[$name]}" 2>/dev/null
  done
  LAB_HOSTS=()
  [ -n "${LAB_DIR:-}" ] && [ -z "${LAB_KEEP:-}" ] && rm -rf "$LAB_DIR"
  rm -rf /var/run/dpdk/mg-*-"$LAB_ID" 2>/dev/null
  rm -f /dev/shm/migratory-lab-"$LAB_ID"* 2>/dev/null
  return 0
}
