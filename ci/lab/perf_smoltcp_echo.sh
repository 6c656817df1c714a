#!/usr/bin/env bash
# Smoke test of the smoltcp baseline server: smoltcp-echo runs in a network namespace on a
# net_tap device (its smoltcp Device is our dpdk-sys Mbufs), and the Linux kernel in the
# namespace pings it and sends 256 KiB over TCP on 4 connections, expecting every byte
# echoed back in order; the server must then stop cleanly with no mbuf leaked.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${MIGRATORY_PERF_BIN_DIR:-target/debug}/smoltcp-echo
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (namespaces, tap)"; exit 1; }
[ -x "$BIN" ] || { echo "FAIL: $BIN not built (cargo build -p migratory-perf)"; exit 1; }

id=$$
ns="mgp-smol-$id"
tap="mgps$((id % 100000))"
log=$(mktemp /tmp/mgp-smol.XXXX.log)
pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null
  rm -rf "/var/run/dpdk/mgp-smol-$id" "$log"
}
trap cleanup EXIT

ip netns add "$ns" || { echo "FAIL: cannot create namespace $ns"; exit 1; }
ip -n "$ns" link set lo up
ip netns exec "$ns" "$BIN" --ip 10.79.0.2/24 --port 7 --sockets 8 --idle-sleep -- \
  -l 0 --no-huge -m 256 --no-pci --file-prefix="mgp-smol-$id" --log-level=lib.eal:error \
  "--vdev=net_tap0,iface=$tap" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  grep -q "^smoltcp-echo: Echo on" "$log" && ip -n "$ns" link show "$tap" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
grep -q "^smoltcp-echo: Echo on" "$log" || { echo "FAIL: smoltcp-echo did not start"; cat "$log"; exit 1; }
ip -n "$ns" addr add 10.79.0.1/24 dev "$tap" && ip -n "$ns" link set "$tap" up

ip netns exec "$ns" ping -c 2 -i 0.2 -W 2 10.79.0.2 >/dev/null || { echo "FAIL: no ping reply from smoltcp"; cat "$log"; exit 1; }

res=$(ip netns exec "$ns" timeout 30 python3 - <<'PY'
import os, socket, threading
ok = []
def one(i):
    data = os.urandom(65536)
    s = socket.create_connection(("10.79.0.2", 7), timeout=10)
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        c = s.recv(65536)
        if not c:
            break
        got += c
    s.close()
    ok.append(got == data)
ts = [threading.Thread(target=one, args=(i,)) for i in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print("echoed" if len(ok) == 4 and all(ok) else f"mismatch {ok}")
PY
)
[ "$res" = "echoed" ] || { echo "FAIL: TCP echo through smoltcp: ${res:-no answer}"; cat "$log"; exit 1; }

kill -INT "$pid"; wait "$pid"; rc=$?; pid=
[ "$rc" -eq 0 ] || { echo "FAIL: smoltcp-echo exited $rc"; cat "$log"; exit 1; }
done_line=$(grep "^smoltcp-echo: done" "$log")
echo "$done_line" | grep -q "bytes_in=262144 bytes_out=262144" || { echo "FAIL: unexpected counters: $done_line"; exit 1; }
echo "ok: smoltcp-echo on net_tap answered ping and echoed 4 x 64 KiB over TCP byte-exact; ${done_line#smoltcp-echo: done }"
