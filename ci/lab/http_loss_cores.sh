#!/usr/bin/env bash
# The 64 MiB download under loss and on two cores:
#  1. nftables on a bridge drops 5% of the frames from the client kernel to the engine;
#  2. the engine's own fault injection drops 5% of the frames it receives and sends;
#  3. the engine runs --cores 2 on a two-queue tap (frames steered between cores).
# Each time curl's copy must have the file's sha256, and the engine must stop cleanly
# with no mbuf leaked.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
lab_init

root="$LAB_DIR/site"
mkdir -p "$root"
head -c 64M /dev/urandom >"$root/big.bin"
head -c 1M /dev/urandom >"$root/small.bin"
want=$(sha256sum "$root/big.bin" | cut -d' ' -f1)

# download HOST CLIENT-HOST: curl the file from CLIENT-HOST, check it, print the rate.
download() {
  local host=$1 client=$2 out
  out=$(lab_exec "$client" curl -sS -m 600 -o "$LAB_DIR/big.out" -w '%{http_code} %{size_download} %{speed_download}' \
    "http://${LAB_EIP[$host]}/big.bin") || { echo "FAIL: curl: $out"; lab_engine_log "$host" | tail; return 1; }
  local code size speed
  read -r code size speed <<<"$out"
  [ "$code" = 200 ] && [ "$size" = 67108864 ] || { echo "FAIL: status $code, $size bytes"; return 1; }
  [ "$(sha256sum "$LAB_DIR/big.out" | cut -d' ' -f1)" = "$want" ] || { echo "FAIL: sha256 differs"; return 1; }
  rm -f "$LAB_DIR/big.out"
  python3 -c "import sys; print(f'{float(sys.argv[1]) * 8 / 1e6:.0f}')" "$speed"
}

figures() {
  "$MIGRATORY_BIN" ctl --name "$1-$LAB_ID" stats --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
t = v["total"]
keys = ["tcp_retransmits", "tcp_fast_recoveries", "tcp_rto_expiries", "steered_out"]
print(" ".join(k.replace("tcp_", "") + "=" + str(t[k]) for k in keys), "cores=" + str(len(v["cores"])))'
}

stop_clean() {
  lab_stop_engine "$1"
  [ "$LAB_RC" = 0 ] || { echo "FAIL: engine $1 exited with $LAB_RC"; return 1; }
  lab_engine_log "$1" | grep -q "mbufs_in_use_at_exit: 0$" || { echo "FAIL: engine $1 leaked mbufs"; return 1; }
}

# 1. 5% loss on the wire towards the engine.
lab_host w || exit 1
lab_engine w 10.86.0.2/24 --idle interrupt --app http --root "$root" || exit 1
lab_peer w wc || exit 1
lab_wire_loss w 5 || exit 1
rate=$(download w wc) || exit 1
echo "wire loss 5%: 64 MiB at $rate Mbit/s, sha256 ok; nftables dropped $(lab_wire_loss_count w) frames; $(figures w)"
[ "$(lab_wire_loss_count w)" -gt 0 ] || { echo "FAIL: nothing dropped"; exit 1; }
stop_clean w || exit 1

# 2. 5% loss in the engine, both directions.
lab_host f || exit 1
lab_engine f 10.87.0.2/24 --idle interrupt --app http --root "$root" --fault drop=0.05,dir=both,seed=5 || exit 1
rate=$(download f f) || exit 1
fig=$(figures f)
echo "engine fault injection 5% both ways: 64 MiB at $rate Mbit/s, sha256 ok; $fig"
case "$fig" in retransmits=0\ *) echo "FAIL: no retransmission under 5% loss"; exit 1 ;; esac
stop_clean f || exit 1

# 3. Two cores on a two-queue tap.
lab_host c || exit 1
lab_engine c 10.88.0.2/24 --idle interrupt --app http --root "$root" --cores 2 || exit 1
rate=$(download c c) || exit 1
# More connections, so that flows land on both cores.
for i in $(seq 1 8); do
  lab_exec c curl -sS -m 30 -o /dev/null "http://10.88.0.2/small.bin" || { echo "FAIL: small download $i"; exit 1; }
done
fig=$(figures c)
echo "two cores: 64 MiB at $rate Mbit/s, sha256 ok; then 8 downloads of 1 MiB; $fig"
case "$fig" in *steered_out=0\ *) echo "FAIL: nothing was steered between the cores"; exit 1 ;; esac
stop_clean c || exit 1
echo "ok: 64 MiB downloads byte-exact under 5% wire loss, under 5% engine fault injection, and on two cores"
