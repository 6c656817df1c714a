#!/usr/bin/env bash
# Byte-exact transfers under loss: nftables dropping 5% of the kernel's frames to the
# engine on the wire (a bridge between the client's namespace and the engine's), and,
# separately, the engine's own fault injection dropping 5% of what it
# receives and sends. Each run echoes 8 connections x 4 MiB (32 MiB each way)
# and checks every byte; the engine's retransmission counters must show recovery work.
set -uo pipefail
here=$(dirname "$0")
source "$here/../lib/lab.sh"
lab_init

check_recovery() {
  local host=$1 stats
  stats=$("$MIGRATORY_BIN" ctl --name "$host-$LAB_ID" stats --json) || return 1
  python3 - "$stats" "$host" <<'PY'
import json, sys
t = json.loads(sys.argv[1])["total"]
print(f"{sys.argv[2]}: retransmits={t['tcp_retransmits']} fast_recoveries={t['tcp_fast_recoveries']} "
      f"rto_expiries={t['tcp_rto_expiries']} sack_retransmits={t['tcp_sack_retransmits']}")
assert t["tcp_retransmits"] > 0 or t["tcp_fast_recoveries"] > 0, "loss must have cost retransmissions"
PY
}

# 1. Loss on the wire: the client kernel (namespace nftc) reaches the engine through a
#    bridge whose nftables rule drops 5% of the frames towards the engine.
lab_host nft || exit 1
lab_engine nft 10.82.0.2/24 --idle interrupt --app echo || exit 1
lab_peer nft nftc || exit 1
lab_wire_loss nft 5 || exit 1
lab_exec nftc python3 "$here/py/echo_client.py" 10.82.0.2 7 8 4194304 --timeout 240 || { lab_engine_log nft | tail; exit 1; }
echo "nftables dropped $(lab_wire_loss_count nft) frames"
[ "$(lab_wire_loss_count nft)" -gt 0 ] || { echo "FAIL: nftables dropped nothing"; exit 1; }
# The kernel lost its segments (and some of its ACKs of ours): it did the retransmitting.
kretx=$(lab_exec nftc nstat -az TcpRetransSegs | awk '/TcpRetransSegs/ {print $2}')
echo "kernel retransmitted $kretx segments"
[ "${kretx:-0}" -gt 0 ] || { echo "FAIL: no kernel retransmissions under 5% loss"; exit 1; }
lab_stop_engine nft; [ "$LAB_RC" = 0 ] || { echo "FAIL: engine exit $LAB_RC"; exit 1; }

# 2. The engine's own fault injection.
lab_host fi || exit 1
lab_engine fi 10.83.0.2/24 --idle interrupt --app echo --fault drop=0.05,dir=both,seed=11 || exit 1
lab_exec fi python3 "$here/py/echo_client.py" 10.83.0.2 7 8 4194304 --timeout 240 || { lab_engine_log fi | tail; exit 1; }
check_recovery fi || exit 1
lab_stop_engine fi; [ "$LAB_RC" = 0 ] || { echo "FAIL: engine exit $LAB_RC"; exit 1; }
lab_engine_log fi | grep -q "mbufs_in_use_at_exit: 0$" || { echo "FAIL: mbufs leaked"; exit 1; }
echo "ok: 8 x 4 MiB echoed byte-exact under 5% wire loss (nftables on a bridge) and 5% engine-side loss (fault injection)"
