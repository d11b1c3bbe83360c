#!/usr/bin/env bash
# Splits the CPU of a saturated proxy run by process: for HAProxy, nginx
# and shoal's balancer in turn (round robin over the same two backends,
# wrk -t2 -c64, alternating, REPS rounds), the CPU per request of the
# proxy, of the two backends and of everything else (wrk, the kernel), and
# how busy the machine was (cores in use out of its CPUs). On a machine
# that the run saturates, requests/s is cores in use / total CPU per
# request: this tells a proxy that costs more per request from one that
# leaves the machine idle.
#
# Usage (loopback only; LBPEERS is a writable copy of the shared lb-peers
# harness after its run.sh has built out/bin/backend):
#   LBPEERS=DIR bench/balancer/cpusplit.sh      REPS (default 5), DUR (s, default 5)
# To compare two builds in the same rounds, SHOAL_B names a second shoal
# binary (measured as "shoal-b"); SHOAL_ENV and SHOAL_B_ENV give each an
# environment (such as GOMAXPROCS=2).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$HERE/out}
REPS=${REPS:-5}
DUR=${DUR:-5}
: "${LBPEERS:?set LBPEERS to a copy of the lb-peers harness}"
mkdir -p "$OUT"
(cd "$ROOT" && go build -o "$OUT/shoal" ./cmd/shoal)

# shellcheck source=../procs.sh
source "$HERE/../procs.sh"
trap stop_all EXIT
up() { # PORT: wait until it answers
    for _ in $(seq 100); do curl -s -o /dev/null -m 1 "http://127.0.0.1:$1/" && return 0; sleep 0.1; done
    echo "not answering: $1" >&2; exit 1
}

cd "$LBPEERS"
mkdir -p out/run out/logs out/nginx
out/bin/backend -addr 127.0.0.1:19001 -route node1 > /dev/null 2>&1 & B1=$!
out/bin/backend -addr 127.0.0.1:19002 -route node2 > /dev/null 2>&1 & B2=$!
PIDS+=("$B1" "$B2")
haproxy -db -f conf/haproxy.cfg > /dev/null 2>&1 & HA=$!
nginx -p "$LBPEERS/" -c conf/nginx.conf -e out/logs/nginx-error.log > /dev/null 2>&1 & NG=$!
MEMBERS=(--member node1=http://127.0.0.1:19001 --member node2=http://127.0.0.1:19002
    --health-path /health --health-interval 1s --log-level warn)
# shellcheck disable=SC2086 # the environments are lists of NAME=VALUE words
env ${SHOAL_ENV:-} "$OUT/shoal" balancer --listen 127.0.0.1:19060 "${MEMBERS[@]}" & SB=$!
PIDS+=("$HA" "$NG" "$SB")
TARGETS=(haproxy nginx shoal)
PORTS=(19001 19002 19020 19030 19060)
if [ -n "${SHOAL_B:-}" ]; then
    # shellcheck disable=SC2086
    env ${SHOAL_B_ENV:-} "$SHOAL_B" balancer --listen 127.0.0.1:19062 "${MEMBERS[@]}" & SB2=$!
    PIDS+=("$SB2"); TARGETS+=(shoal-b); PORTS+=(19062)
fi
for p in "${PORTS[@]}"; do up "$p"; done

ticks() { local s=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $s; }
busy() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
cpus=$(nproc)
run() { # NAME PORT PROXY_PIDS...
    local name=$1 port=$2 p0 b0 a0 p1 b1 a1 t0 t1 rps
    shift 2
    p0=$(ticks "$@"); b0=$(ticks "$B1" "$B2"); a0=$(busy); t0=$(date +%s%N)
    rps=$(wrk -t2 -c64 -d"${DUR}s" "http://127.0.0.1:$port/" 2>&1 | awk '/^Requests\/sec/ { print $2 }')
    p1=$(ticks "$@"); b1=$(ticks "$B1" "$B2"); a1=$(busy); t1=$(date +%s%N)
    awk -v n="$name" -v r="$rps" -v s="$(( (t1 - t0) / 1000000 ))" -v p=$((p1 - p0)) -v b=$((b1 - b0)) -v a=$((a1 - a0)) -v c="$cpus" 'BEGIN {
        q = r * s / 1000
        printf "%s\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\n", n, r, p * 10000 / q, b * 10000 / q, (a - p - b) * 10000 / q, a * 10000 / q, a / (s / 10) }'
}
printf 'proxy\treq/s\tproxy µs/req\tbackends µs/req\trest µs/req\ttotal µs/req\tcores busy\n' | tee "$OUT/cpusplit.tsv"
for _ in $(seq "$REPS"); do
    run haproxy 19020 "$HA" | tee -a "$OUT/cpusplit.tsv"
    run nginx 19030 "$NG" $(ps -o pid= --ppid "$NG") | tee -a "$OUT/cpusplit.tsv"
    run shoal 19060 "$SB" | tee -a "$OUT/cpusplit.tsv"
    if [ -n "${SHOAL_B:-}" ]; then run shoal-b 19062 "$SB2" | tee -a "$OUT/cpusplit.tsv"; fi
done
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
echo "medians of $REPS rounds ($cpus CPUs):"
for n in "${TARGETS[@]}"; do
    line=$n
    for i in 2 3 4 5 6 7; do line+=$'\t'$(awk -F'\t' -v n="$n" -v i="$i" '$1 == n { print $i }' "$OUT/cpusplit.tsv" | median); done
    echo "$line"
done
