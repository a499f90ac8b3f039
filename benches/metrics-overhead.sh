#!/usr/bin/env bash
# CPU cost of the metrics on a large run: `orca-etm sync` of a
# 1,000,000-finding tenant from the fake Orca (rate limit off), with the
# exporter on (--metrics-listen, scraped every second, as a busy Prometheus
# would) and off, alternated RUNS times. Prints each run's user+system CPU
# seconds (from /usr/bin/time), then the medians and the overhead.
#
#   cargo build --release --bins
#   benches/metrics-overhead.sh            # FINDINGS=1000000 RUNS=5
set -euo pipefail
cd "$(dirname "$0")/.."

FINDINGS=${FINDINGS:-1000000}
RUNS=${RUNS:-5}
BIN=${BIN:-target/release}
work=$(mktemp -d)
fake_pid=
cleanup() {
    [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

FAKE_ORCA_TOKEN=bench-token "$BIN/fake-orca" --listen "127.0.0.1:$(port)" --seed 1 \
    --assets $((FINDINGS / 20)) --findings "$FINDINGS" --rate 0 --cap 0 \
    --odd-share 0.05 >"$work/fake.out" 2>/dev/null &
fake_pid=$!
for _ in $(seq 100); do [ -s "$work/fake.out" ] && break; sleep 0.1; done
url=$(head -1 "$work/fake.out")

cat >"$work/orca-etm.toml" <<TOML
[orca]
domain = "$url"
allow_insecure_http = true
requests_per_second = 0
page_cap = 0
[output]
dir = "$work/out"
[run]
work_dir = "$work/work"
state_dir = "$work/state"
TOML

one() { # mode → "cpu_seconds wall_seconds"
    local mode=$1 args=() scraper=
    rm -rf "$work/out" "$work/work" "$work/state"
    if [ "$mode" = on ]; then
        local p; p=$(port)
        args=(--metrics-listen "127.0.0.1:$p")
        ( while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$p/metrics" || true; done ) &
        scraper=$!
    fi
    ORCA_API_TOKEN=bench-token /usr/bin/time -f "%U %S %e" -o "$work/time" \
        "$BIN/orca-etm" sync --progress off --config "$work/orca-etm.toml" "${args[@]}" \
        >/dev/null 2>"$work/sync.err" || { cat "$work/sync.err" >&2; exit 1; }
    [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
    awk '{printf "%.2f %.2f\n", $1 + $2, $3}' "$work/time"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

one off >/dev/null  # warm the page cache and the fake
: >"$work/off"; : >"$work/on"
for i in $(seq "$RUNS"); do
    for mode in off on; do
        read -r cpu wall < <(one "$mode")
        echo "run $i exporter $mode: cpu ${cpu}s wall ${wall}s"
        echo "$cpu" >>"$work/$mode"
    done
done
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b - a) / a * 100}'; }
off=$(median <"$work/off"); on=$(median <"$work/on")
echo "median cpu: exporter off ${off}s, on ${on}s, overhead $(pct "$off" "$on")%"
# The machine is shared: noise only ever adds CPU time, so the least of
# each side, and the median of the paired differences, say more than a
# difference of medians when neighbours are busy.
min_off=$(sort -n "$work/off" | head -1); min_on=$(sort -n "$work/on" | head -1)
echo "least cpu: exporter off ${min_off}s, on ${min_on}s, overhead $(pct "$min_off" "$min_on")%"
pair=$(paste "$work/off" "$work/on" | awk '{print $2 - $1}' | median)
echo "median of paired differences (on - off): ${pair}s, $(pct "$off" "$(awk -v a="$off" -v d="$pair" 'BEGIN {print a + d}')")% of the median off"
