#!/usr/bin/env bash
# tests/metrics/run.sh - Debian's Prometheus server scrapes a running gpu_proxy_stub (--metrics
# on a localhost TCP port) while metrics_load works in two zones; the server's HTTP query API
# must return the expected series: memory used equal to what each zone holds, the forged-handle
# attempt counted as a refusal, calls and the latency histogram moving. vgpu-smi --json is
# checked against the same state. Exit 77 (skipped) without the prometheus binary.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
proxy=$top/gpu-proxy/gpu_proxy_stub
smi=$top/gpu-proxy/vgpu-smi
load=$here/build/metrics_load
prom=$(command -v prometheus || true)

if [[ -z "$prom" ]]; then
    echo "metrics: SKIP: no prometheus binary (Debian package prometheus, in mk/deps.txt)"
    exit 77
fi
for f in "$proxy" "$smi" "$load"; do
    [[ -x $f ]] || { echo "metrics: FAIL: $f is missing (make -C tests/metrics)"; exit 1; }
done

dir=$(mktemp -d /tmp/vgpu-metrics.XXXXXX)
pids=()
cleanup() {
    # The last started first: the load ends before the proxy it talks to.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null
        wait "${pids[i]}" 2>/dev/null
    done
    rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "metrics: FAIL: $*"
    echo "--- gpu_proxy log"; tail -20 "$dir/proxy.log"
    echo "--- prometheus log"; tail -20 "$dir/prom.log"
    exit 1
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

mport=$(free_port); pport=$(free_port)
"$proxy" --listen "$dir/run" --zone a:64M --zone b:32M --cgroup off --log-level warn \
    --metrics "127.0.0.1:$mport" > "$dir/proxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -S $dir/run/admin.sock ]] && break; sleep 0.1; done
[[ -S $dir/run/admin.sock ]] || fail "gpu_proxy_stub did not start"

coproc LOAD { exec "$load" "$dir/run"; }
pids+=("$LOAD_PID")
read -r -t 10 line <&"${LOAD[0]}" && [[ $line == ready ]] || fail "metrics_load did not get ready"

cat > "$dir/prometheus.yml" <<EOC
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: gpu_proxy
    static_configs:
      - targets: ["127.0.0.1:$mport"]
EOC
"$prom" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
    --web.listen-address="127.0.0.1:$pport" --log.level=warn > "$dir/prom.log" 2>&1 &
pids+=($!)

# query EXPR: the instant vector's samples as "labels value" lines, sorted.
query() {
    python3 - "$pport" "$1" <<'EOP'
import json, sys, urllib.parse, urllib.request
url = "http://127.0.0.1:%s/api/v1/query?query=%s" % (sys.argv[1], urllib.parse.quote(sys.argv[2]))
try:
    r = json.load(urllib.request.urlopen(url, timeout=5))
except Exception as e:
    print("error", e); sys.exit(0)
for s in sorted(r["data"]["result"], key=lambda s: sorted(s["metric"].items())):
    m = s["metric"]
    print(",".join("%s=%s" % (k, m[k]) for k in sorted(m) if k not in ("job", "instance", "__name__")),
          s["value"][1])
EOP
}
# expect EXPR WANTED: waits (up to 30 s) until the query answers exactly WANTED.
expect() {
    local got=""
    for _ in $(seq 60); do
        got=$(query "$1")
        [[ $got == "$2" ]] && { echo "ok: $1"; return 0; }
        sleep 0.5
    done
    fail "query $1 answered '$got', wanted '$2'"
}

start=$(date +%s)
expect 'up{job="gpu_proxy"}' ' 1'
expect 'vgpu_zone_memory_used_bytes' $'zone=a 5242880\nzone=b 3145728'
expect 'vgpu_zone_allocations' $'zone=a 2\nzone=b 1'
expect 'vgpu_zone_refusals_total{reason="handle"}' $'reason=handle,zone=a 0\nreason=handle,zone=b 1'
expect 'sum by (zone) (vgpu_zone_refusals_total)' $'zone=a 0\nzone=b 1'
expect 'vgpu_zone_clients' $'zone=a 1\nzone=b 1'
expect 'vgpu_zone_memory_quota_bytes' $'zone=a 67108864\nzone=b 33554432'
expect 'rate(vgpu_zone_copied_bytes_total{direction="dtoh"}[3s]) > bool 0' \
    $'direction=dtoh,zone=a 1\ndirection=dtoh,zone=b 0'
expect 'vgpu_zone_call_duration_seconds_count{family="copy"} > bool 0' \
    $'family=copy,zone=a 1\nfamily=copy,zone=b 1'
expect 'histogram_quantile(0.5, sum by (le) (rate(vgpu_zone_call_duration_seconds_bucket{zone="a",family="copy"}[5s]))) < bool 1' ' 1'

# Every query of the Grafana dashboard parses and returns series from this server.
python3 - "$pport" "$top/docs/grafana-dashboard.json" <<'EOP' || fail "the dashboard's queries"
import json, sys, urllib.parse, urllib.request
d = json.load(open(sys.argv[2]))
subst = {"$zone": ".*", "$instance": ".*", "$__rate_interval": "5s", "$__range": "1m"}
for p in d["panels"]:
    for t in p["targets"]:
        e = t["expr"]
        for k, v in subst.items():
            e = e.replace(k, v)
        url = "http://127.0.0.1:%s/api/v1/query?query=%s" % (sys.argv[1], urllib.parse.quote(e))
        try:
            r = json.load(urllib.request.urlopen(url, timeout=5))
        except Exception as ex:
            sys.exit("dashboard panel %r: %s: %s" % (p["title"], e, ex))
        if r["status"] != "success":
            sys.exit("dashboard panel %r: %s: %s" % (p["title"], e, r))
        if not r["data"]["result"] and "vgpu_gpu_" not in e and "failures" not in e:
            sys.exit("dashboard panel %r: %s: no series" % (p["title"], e))
EOP
echo "ok: the dashboard's queries"

# vgpu-smi reads the same state through the admin socket.
"$smi" --admin "$dir/run/admin.sock" --json > "$dir/smi.json" || fail "vgpu-smi --json failed"
python3 - "$dir/smi.json" <<'EOP' || fail "vgpu-smi --json disagrees: $(cat "$dir/smi.json")"
import json, sys
d = json.load(open(sys.argv[1]))
z = {x["name"]: x for x in d["zones"]}
assert d["version"] == 1 and d["gpu"]["backend"] == "stub"
assert z["a"]["used"] == 5242880 and z["b"]["used"] == 3145728
assert z["a"]["allocations"] == 2 and z["b"]["refused.handle"] == 1
assert z["a"]["clients"] == 1 and z["a"]["state"] == "ready"
EOP
echo "ok: vgpu-smi --json agrees"
"$smi" --admin "$dir/run/admin.sock" | grep -q '^a  *ready  *5 MiB /   64 MiB' \
    || fail "vgpu-smi's table disagrees: $("$smi" --admin "$dir/run/admin.sock")"
echo "ok: vgpu-smi's table agrees"
echo "metrics: PASS ($(( $(date +%s) - start )) s of queries)"
