#!/usr/bin/env bash
# `migratory serve` refuses bad set-ups with one clear line on stderr and exit code 2.
set -uo pipefail
source "$(dirname "$0")/../lib/lab.sh"
lab_init
lab_host a || exit 1
fails=0

# expect_usage DESCRIPTION PATTERN CMD... (an engine that starts anyway is killed after 20 s)
expect_usage() {
  local what=$1 pattern=$2; shift 2
  local err rc
  err=$(timeout 20 "$@" 2>&1 >/dev/null); rc=$?
  local lines; lines=$(printf '%s\n' "$err" | grep -v '^EAL: \|^TELEMETRY: \|^$' | wc -l)
  if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && printf '%s' "$err" | grep -q -- "$pattern"; then
    echo "ok: $what -> exit 2: $(printf '%s\n' "$err" | grep -v '^EAL: \|^TELEMETRY: ')"
  else
    echo "FAIL: $what: exit $rc, $lines lines:"; printf '%s\n' "$err" | sed 's/^/  | /'
    fails=$((fails + 1))
  fi
}

bin=$MIGRATORY_BIN
eal=(-l 0 --no-huge -m 128 --no-pci --log-level=lib.eal:error)
expect_usage "bad address" "10.0.0.300/24" "$bin" serve --ip 10.0.0.300/24 -- "${eal[@]}"
expect_usage "bad prefix" "10.0.0.2/40" "$bin" serve --ip 10.0.0.2/40 -- "${eal[@]}"
expect_usage "missing prefix" "10.0.0.2" "$bin" serve --ip 10.0.0.2 -- "${eal[@]}"
expect_usage "bad idle mode" "nap" "$bin" serve --ip 10.0.0.2/24 --idle nap -- "${eal[@]}"
expect_usage "unknown subcommand" "fly" "$bin" fly
expect_usage "no port found" "no DPDK port found" ip netns exec "${LAB_NS[a]}" "$bin" serve --ip 10.0.0.2/24 --name noport$$ -- "${eal[@]}" --file-prefix=mg-noport-$$

# A tap name already in use in the namespace.
busy="mgbusy$((LAB_ID % 100000))"
lab_exec a ip tuntap add dev "$busy" mode tap || { echo "FAIL: cannot create tap $busy"; exit 1; }
expect_usage "tap name in use" "already exists" ip netns exec "${LAB_NS[a]}" "$bin" serve --ip 10.0.0.2/24 --name busy$$ -- "${eal[@]}" --file-prefix=mg-busy-$$ "--vdev=net_tap0,iface=$busy"
expect_usage "no-huge with in-memory" "cannot be combined" "$bin" serve --ip 10.0.0.2/24 -- -l 0 --no-huge --in-memory
# EAL arguments that need hugepages on a system where hugetlbfs is not mounted: in a
# private mount namespace with every hugetlbfs mount removed.
expect_usage "hugepages needed but not mounted" "hugetlbfs is not mounted" \
  unshare -m sh -c 'for m in $(awk "\$3 == \"hugetlbfs\" {print \$2}" /proc/mounts); do umount "$m"; done; exec "$0" "$@"' \
  "$bin" serve --ip 10.0.0.2/24 --name nohuge$$ -- -l 0 --no-pci --file-prefix=mg-nohuge-$$
# The cluster's options: the key file, and the peers its links name.
keydir=$(mktemp -d)
key=$keydir/key
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$key"; chmod 600 "$key"
short=$keydir/short; printf '%s' 0123456789abcdef >"$short"; chmod 600 "$short"
open=$keydir/open; cp "$key" "$open"; chmod 644 "$open"
chan=(serve --ip 10.0.0.2/24 --channel 10.0.0.2:7000 --peer b=10.0.0.3:7000)
expect_usage "cluster key too short" "needs at least 32" "$bin" "${chan[@]}" --cluster-key-file "$short" -- "${eal[@]}"
expect_usage "cluster key readable by others" "readable by others" "$bin" "${chan[@]}" --cluster-key-file "$open" -- "${eal[@]}"
expect_usage "cluster key file missing" "$keydir/none" "$bin" "${chan[@]}" --cluster-key-file "$keydir/none" -- "${eal[@]}"
expect_usage "peer without a channel" "channel" "$bin" serve --ip 10.0.0.2/24 --peer b=10.0.0.3:7000 -- "${eal[@]}"
expect_usage "bad peer" "not ADDR:PORT" "$bin" "${chan[@]}" --peer c=10.0.0.4 --cluster-key-file "$key" -- "${eal[@]}"
expect_usage "shared-memory link to no peer" "no --peer of that name" "$bin" "${chan[@]}" --peer-shm c=/dev/shm/mg-cli-$$ --cluster-key-file "$key" -- "${eal[@]}"
expect_usage "shared-memory link file unusable" "--peer-shm b" "$bin" "${chan[@]}" --peer-shm "b=$keydir" --cluster-key-file "$key" -- "${eal[@]}"
rm -rf "$keydir" /dev/shm/mg-cli-$$

rm -rf /var/run/dpdk/mg-noport-$$ /var/run/dpdk/mg-busy-$$ /var/run/dpdk/mg-nohuge-$$

[ "$fails" -eq 0 ] || { echo "FAIL: $fails cases"; exit 1; }
echo "ok: every bad set-up refused with one line and exit 2"
