#!/usr/bin/env bash
# Keeps the performance tooling working: runs `perf/run --quick` (debug build, results in a
# temporary folder, not perf/results) and checks that every system it measured produced a
# figure: the wire ceiling (reflector + migratory-gen l2 over net_memif); the engine
# (`migratory serve` driven by migratory-gen over net_memif), smoltcp (smoltcp-echo, same)
# and the Linux baseline for each of latency, rpc, cps and bulk; the engine under
# syn-flood; the engine's packet rate against the wire ceiling; rpc against a two-core
# engine with and without migrations for each application state size (moves counted, none
# lost); conns (connections held open to one engine core, some running rpc, against rpc
# over those alone: every connection up, memory per connection read); plus the markdown table
# and one PNG per workload. It checks that the figures exist and are positive, not their
# size.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (memif, hugepages)"; exit 1; }
out=$(mktemp -d /tmp/mg-perf-quick.XXXX)
trap 'rm -rf "$out"' EXIT

start=$(date +%s)
python3 perf/run --quick --debug --out "$out" > "$out/run.log" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
if [ "$rc" -ne 0 ]; then
  echo "FAIL: perf/run --quick exited $rc"; tail -n 30 "$out/run.log"; exit 1
fi

summary=$(python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
doc = json.load(open(os.path.join(out, "latest.json")))
bad = []
for key in ("commit", "machine", "generated"):
    if not doc.get(key):
        bad.append(f"no {key}")
m = doc.get("machine") or {}
if not m.get("cpu_model") or not m.get("cores"):
    bad.append("machine lacks cpu_model/cores")
w = doc.get("wire_ceiling") or {}
if not (isinstance(w.get("pps"), (int, float)) and w["pps"] > 0):
    bad.append("no wire ceiling pps")
figs = [f"wire {w.get('pps', 0):.0f} pps"]
wls = doc.get("workloads") or {}
expected = {name: ("engine", "smoltcp", "linux") for name in ("latency", "rpc", "cps", "bulk")}
expected["syn-flood"] = ("engine",)
for name, want in expected.items():
    wl = wls.get(name)
    if not wl:
        bad.append(f"workload {name} missing")
        continue
    unit = wl.get("unit")
    systems = wl.get("systems") or {}
    for sysname in want:
        if sysname not in systems:
            bad.append(f"{name}: no {sysname} figure")
    for sysname, r in systems.items():
        v = r.get(unit)
        if not (isinstance(v, (int, float)) and v > 0):
            bad.append(f"{name}/{sysname}: no {unit}")
            continue
        if unit != "gbps" and not (r.get("p50_us") and r.get("p99_us")):
            bad.append(f"{name}/{sysname}: no latency percentiles")
        figs.append(f"{name}/{sysname} {v:g} {unit}")
wf = doc.get("wire_ceiling_full") or {}
if not (wf.get("size") == 1514 and isinstance(wf.get("gbps"), (int, float)) and wf["gbps"] > 0):
    bad.append("no wire ceiling at 1514 B frames")
if not (doc.get("bulk_vs_wire") or {}).get("ratio"):
    bad.append("no bulk_vs_wire ratio")
# The engine and the generator report how busy their poll loops were over the window.
for name in ("latency", "rpc", "cps", "bulk"):
    r = ((wls.get(name) or {}).get("systems") or {}).get("engine") or {}
    for k in ("server_busy_share", "client_busy_share"):
        v = r.get(k)
        if not (isinstance(v, (int, float)) and 0 < v <= 1):
            bad.append(f"{name}/engine: {k} {v!r} not in (0, 1]")
    if r.get("limited_by") not in ("server", "generator", "both", "neither"):
        bad.append(f"{name}/engine: limited_by {r.get('limited_by')!r}")
sc = doc.get("workloads_scaling") or {}
one = (sc.get("runs") or {}).get("1") or {}
if not (isinstance(one.get("rps"), (int, float)) and one["rps"] > 0 and one.get("vs_n_times_one") == 1.0):
    bad.append(f"scaling: no rpc figure on one engine core ({one!r})")
mg = (doc.get("workloads_migrate") or {}).get("runs") or {}
for state in (0, 4096, 65536):
    for how in ("still", "moving"):
        r = mg.get(f"state-{state}-{how}")
        if not r or not r.get("rps"):
            bad.append(f"migrate state {state} {how}: no rps")
            continue
        if how == "moving":
            m = r.get("migration") or {}
            if not m.get("migrations"):
                bad.append(f"migrate state {state}: no migration counted")
            elif m.get("lost"):
                bad.append(f"migrate state {state}: {m['lost']} connections lost")
            else:
                figs.append(f"migrate/{state} {m['migrations']} moves")
cn = doc.get("workloads_conns") or {}
for label in ("held", "alone"):
    r = (cn.get("runs") or {}).get(label) or {}
    if not (r.get("rps", 0) > 0 and r.get("open_per_s", 0) > 0):
        bad.append(f"conns {label}: no rpc or open rate ({r!r})")
    elif r.get("server_connections") != r.get("connections"):
        bad.append(f"conns {label}: the engine held {r.get('server_connections')} of {r.get('connections')}")
    elif not (r.get("state_bytes_per_conn", 0) > 0):
        bad.append(f"conns {label}: no memory per connection")
    else:
        figs.append(f"conns/{label} {r['connections']} open, {r['state_bytes_per_conn']:g} B/conn")
if not cn.get("held_vs_alone"):
    bad.append("conns: no ratio of held to alone")
ev = doc.get("engine_vs_wire") or {}
if not (isinstance(ev.get("ratio"), (int, float)) and ev["ratio"] > 0 and ev.get("engine_pps", 0) > 0):
    bad.append("no engine pps against the wire ceiling")
else:
    figs.append(f"engine/wire {ev['ratio']:g}")
for f in ["latest.md", "wire.png"] + [f"{n}.png" for n in wls]:
    p = os.path.join(out, f)
    if not os.path.isfile(p) or os.path.getsize(p) == 0:
        bad.append(f"{f} not written")
dated = [f for f in os.listdir(out) if f[:2] == "20" and f.endswith(".json")]
if len(dated) != 1:
    bad.append("no dated copy of the results")
if doc.get("failed"):
    bad.append(f"failed: {sorted(doc['failed'])}")
if bad:
    print("FAIL: " + "; ".join(bad))
    sys.exit(1)
print(", ".join(figs))
PY
)
if [ $? -ne 0 ]; then
  echo "$summary"; tail -n 30 "$out/run.log"; exit 1
fi
echo "ok: perf/run --quick in ${secs} s measured every system: $summary"
