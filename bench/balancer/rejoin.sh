#!/usr/bin/env bash
# Measures how soon a cluster-aware balancer (shoal balancer --cluster-join)
# puts a restarted node back in rotation: three shoal nodes and the
# balancer on loopback; ROUNDS times, n1 is killed (SIGKILL), restarted
# after PAUSE seconds, and the time from n1's own "ready" log line
# ("cluster: joined ...") to the balancer's line that shows it ready
# ("balancer: cluster node added|state ... state=ready") is reported,
# both stamped by the same clock.
#
# Usage: bench/balancer/rejoin.sh   (ROUNDS, default 5; PAUSE, default 3)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$HERE/out}
ROUNDS=${ROUNDS:-5}
PAUSE=${PAUSE:-3}
mkdir -p "$OUT"
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop_all EXIT
(cd "$ROOT" && go build -o "$OUT/shoal" ./cmd/shoal)
"$OUT/shoal" node --gen-key > "$OUT/cluster.key"; chmod 600 "$OUT/cluster.key"

node() { # I [join]
    local i=$1 args=(node --name "n$1" --listen "127.0.0.1:$((17600 + $1))" --log-level info
        --cluster-listen "127.0.0.1:$((17610 + $1))" --cluster-key-file "$OUT/cluster.key")
    [ "$i" -gt 1 ] && args+=(--join "127.0.0.1:17612")
    [ "$i" = 1 ] && args+=(--join "127.0.0.1:17612,127.0.0.1:17613")
    "$OUT/shoal" "${args[@]}" >/dev/null 2>>"$OUT/n$i.log" &
    echo $!
}
ready() { # URL
    for _ in $(seq 400); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
        sleep 0.05
    done
    echo "not ready: $1" >&2; return 1
}
ms() { date -d "$1" +%s%3N; }

: > "$OUT/n1.log"; : > "$OUT/n2.log"; : > "$OUT/n3.log"; : > "$OUT/balancer.log"
# n2 first (n1 joins through n2 and n3 when it restarts)
P2=$(node 2); PIDS+=("$P2"); ready http://127.0.0.1:17602/healthz/ready
P3=$(node 3); PIDS+=("$P3"); ready http://127.0.0.1:17603/healthz/ready
P1=$(node 1); PIDS+=("$P1"); ready http://127.0.0.1:17601/healthz/ready
"$OUT/shoal" balancer --listen 127.0.0.1:17600 --log-level info --cluster-join 127.0.0.1:17612 \
    --cluster-key-file "$OUT/cluster.key" --cluster-listen 127.0.0.1:17619 2>>"$OUT/balancer.log" &
PIDS+=($!)
sleep 2
for r in $(seq "$ROUNDS"); do
    kill -KILL "$P1"; wait "$P1" 2>/dev/null || true
    sleep "$PAUSE"
    before=$(wc -l < "$OUT/balancer.log"); nbefore=$(wc -l < "$OUT/n1.log")
    P1=$(node 1); PIDS+=("$P1")
    ready http://127.0.0.1:17601/healthz/ready
    seen=""
    for _ in $(seq 200); do
        seen=$(tail -n +"$((before + 1))" "$OUT/balancer.log" | grep -E 'msg="balancer: cluster node (added|state)" node=n1 .*state=ready' | head -1 || true)
        [ -n "$seen" ] && break
        sleep 0.02
    done
    up=$(tail -n +"$((nbefore + 1))" "$OUT/n1.log" | grep 'msg="cluster: joined' | head -1 | sed -n 's/^time=\([^ ]*\) .*/\1/p')
    at=$(sed -n 's/^time=\([^ ]*\) .*/\1/p' <<< "$seen")
    if [ -z "$up" ] || [ -z "$at" ]; then echo "round $r: n1 ready at ${up:-?}, balancer saw it at ${at:-never}"; continue; fi
    echo "round $r: balancer had n1 ready $(( $(ms "$at") - $(ms "$up") )) ms after n1 reported ready"
done
