#!/usr/bin/env bash
# `--app http` with the Linux kernel as the client: curl downloads a 64 MiB file of random
# bytes whose sha256 matches; 200 sequential GETs on one keep-alive connection; 50
# parallel keep-alive clients; a missing file is 404; pipelining, HEAD, HTTP/1.0 and the
# error statuses (py/http_client.py protocol). Every body is compared with the file. The
# engine's table empties and it stops with no mbuf leaked.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
lab_init

fail() { echo "FAIL: $*"; lab_engine_log a | grep -v '^  ' | tail -20; exit 1; }

# The site: a 64 MiB file and some small ones.
root="$LAB_DIR/site"
mkdir -p "$root/docs"
head -c 64M /dev/urandom >"$root/big.bin"
printf '<!doctype html>\n<title>migratory</title>\n<p>hello from the engine\n' >"$root/index.html"
head -c 1024 /dev/urandom >"$root/docs/1k.bin"
head -c 10000 /dev/urandom >"$root/docs/10k.bin"
head -c 100000 /dev/urandom >"$root/docs/100k.bin"
echo "a small text file" >"$root/docs/note.txt"
want=$(sha256sum "$root/big.bin" | cut -d' ' -f1)

lab_host a || exit 1
lab_engine a 10.83.0.2/24 --idle interrupt --app http --root "$root" || exit 1
eip=$(lab_engine_ip a)
url="http://$eip"

# 1. The 64 MiB download.
out=$(lab_exec a curl -sS -m 300 -o "$LAB_DIR/big.out" -w '%{http_code} %{size_download} %{speed_download} %{time_total}' "$url/big.bin") \
  || fail "curl of big.bin failed: $out"
read -r code size speed secs <<<"$out"
got=$(sha256sum "$LAB_DIR/big.out" | cut -d' ' -f1)
[ "$code" = 200 ] || fail "big.bin: status $code"
[ "$size" = 67108864 ] || fail "big.bin: $size bytes, wanted 67108864"
[ "$got" = "$want" ] || fail "big.bin: sha256 $got, wanted $want"
mbps=$(python3 -c "import sys; print(f'{float(sys.argv[1]) * 8 / 1e6:.0f}')" "$speed")
echo "download: 64 MiB in ${secs}s = $mbps Mbit/s, sha256 matches"
rm -f "$LAB_DIR/big.out"

# 2. A missing file, and the root's index.html.
code=$(lab_exec a curl -sS -m 10 -o /dev/null -w '%{http_code}' "$url/no/such/file") || fail "curl of a missing file failed"
[ "$code" = 404 ] || fail "missing file: status $code, wanted 404"
body=$(lab_exec a curl -sS -m 10 "$url/") || fail "curl of / failed"
[ "$body" = "$(cat "$root/index.html")" ] || fail "/ did not serve index.html"
echo "missing file: 404; / serves index.html"

# 3. 200 GETs on one keep-alive connection; 4. 50 parallel keep-alive clients.
lab_exec a python3 "$here/py/http_client.py" "$eip" 80 "$root" keepalive 200 || fail "keep-alive"
lab_exec a python3 "$here/py/http_client.py" "$eip" 80 "$root" parallel 50 20 || fail "parallel clients"
# curl with several URLs reuses its connection too.
urls=()
for _ in $(seq 1 50); do urls+=(-o /dev/null "$url/docs/note.txt"); done
n=$(lab_exec a curl -sS -m 60 -w '%{http_code} %{num_connects}\n' "${urls[@]}" | awk '$1 == 200 { ok++ } { c += $2 } END { print (ok == 50 ? c : "not-all-200") }')
[ "$n" = 1 ] || fail "curl opened $n connections for 50 URLs (wanted 1: keep-alive)"
echo "curl: 50 URLs over 1 connection"

# 5. Protocol details.
lab_exec a python3 "$here/py/http_client.py" "$eip" 80 "$root" protocol || fail "protocol checks"

# The table empties: the clients closed; what the server closed waits in TIME-WAIT.
stats=""
for _ in $(seq 1 50); do
  stats=$("$MIGRATORY_BIN" ctl --name "a-$LAB_ID" stats --json) || fail "ctl stats"
  python3 -c 'import json,sys; t=json.loads(sys.argv[1])["total"]; sys.exit(0 if sum(v for k, v in t.items() if k.startswith("state_") and k != "state_time_wait")==0 else 1)' "$stats" && break
  sleep 0.1
done
python3 - "$stats" <<'PY' || fail "connections left open"
import json, sys
t = json.loads(sys.argv[1])["total"]
live = sum(v for k, v in t.items() if k.startswith("state_") and k != "state_time_wait")
print(f"engine: accepted={t['tcp_accepted']} live={live} time_wait={t.get('state_time_wait', 0)} "
      f"retransmits={t['tcp_retransmits']} rto_expiries={t['tcp_rto_expiries']} errors={t['tcp_errors']}")
assert live == 0, f"{live} connections still open"
PY

lab_stop_engine a
[ "$LAB_RC" = 0 ] || fail "engine exited with $LAB_RC"
lab_engine_log a | grep -q "mbufs_in_use_at_exit: 0$" || fail "mbufs leaked"
echo "ok: http: 64 MiB download at $mbps Mbit/s (sha256 ok), 200 keep-alive GETs on one connection, 50 parallel keep-alive clients, 404, pipelining and errors; clean stop"
