#!/usr/bin/env bash
# RSTs: a SYN to a closed port gets one, data to a closed connection gets one, and a RST
# from the client frees the connection in the engine.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
lab_init
lab_host a || exit 1
lab_engine a 10.81.0.2/24 --idle interrupt --app echo || exit 1
emac=$(sed -n 's/^migratory: engine .* mac \([0-9a-f:]*\) .*/\1/p' "${LAB_LOG[a]}")
lab_exec a python3 "$here/py/rst_probe.py" "${LAB_TAP[a]}" "$emac" 10.81.0.2 "$(lab_kernel_ip a)" 7 9 || { lab_engine_log a | tail; exit 1; }
for i in $(seq 1 50); do
  stats=$("$MIGRATORY_BIN" ctl --name "a-$LAB_ID" stats --json) || exit 1
  python3 -c 'import json,sys; t=json.loads(sys.argv[1])["total"]; sys.exit(0 if t["connections"]==0 and t["tcp_errors"]>=1 else 1)' "$stats" && break
  sleep 0.1
done
python3 - "$stats" <<'PY' || exit 1
import json, sys
t = json.loads(sys.argv[1])["total"]
print(f"engine: resets_sent_no_connection={t['tcp_resets_sent_no_connection']} listen_resets_sent={t['listen_resets_sent']} errors={t['tcp_errors']} connections={t['connections']}")
assert t["tcp_resets_sent_no_connection"] >= 1, "a RST for the SYN to the closed port"
assert t["listen_resets_sent"] >= 1, "a RST from the listener for the stray data (RFC 9293 3.10.7.2)"
assert t["connections"] == 0, "the client's RST freed the connection"
assert t["tcp_errors"] >= 1, "the reset was reported to the application as an error"
PY
# A clean stop resets the connections still open: the client sees ECONNRESET at once.
cat > "$LAB_DIR/held.py" <<'PYEOF'
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
c.sendall(b"hold")
assert c.recv(4) == b"hold"
print("holding", flush=True)
c.settimeout(10)
t = time.monotonic()
try:
    data = c.recv(10)
    print(f"no reset: recv returned {data!r} after {time.monotonic() - t:.2f}s")
except ConnectionResetError:
    print(f"reset after {time.monotonic() - t:.2f}s")
except socket.timeout:
    print("no reset: timeout")
PYEOF
lab_exec a python3 "$LAB_DIR/held.py" 10.81.0.2 7 > "$LAB_DIR/held.out" 2>&1 &
held=$!
for i in $(seq 1 50); do grep -q holding "$LAB_DIR/held.out" && break; sleep 0.1; done
lab_stop_engine a
[ "$LAB_RC" = 0 ] || { echo "FAIL: engine exited with $LAB_RC"; exit 1; }
wait $held
cat "$LAB_DIR/held.out"
grep -q "^reset after" "$LAB_DIR/held.out" || { echo "FAIL: the open connection was not reset when the engine stopped"; exit 1; }
echo "ok: RST for closed port, RST for data without connection, client RST frees the connection, stop resets open connections"
