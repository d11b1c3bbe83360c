#!/usr/bin/env bash
# Measures shoal's cluster against the real Apache + Tomcat 10 cluster on
# this machine, in one run: GET /counter over 256 logged-in sessions (wrk
# -t2 -c32 -d15s after a 5 s warm-up, the Tomcat harness's load shape),
# through each one's balancer, with sticky routing and with round robin,
# over 1, 2 and 3 nodes; server CPU per request from /proc; the nodes'
# replication lag (ack round trip, from their /metrics) under that load, and
# at Tomcat's measured rate (sticky-2nodes-paced: about 1.3k req/s).
#
# Usage (as root, loopback only; bench/README.md has the figures):
#   TOMCAT_HARNESS=DIR bench/tomcat/run.sh   DIR: a writable copy of the shared
#                                             tomcat-cluster harness, after its setup.sh
#   bench/tomcat/run.sh                      shoal's side only
# Environment: NODE_CPU (cores, e.g. 0.25: each node, shoal's and Tomcat's,
# runs in a CPU cgroup of its own with that quota, as if each were a machine
# of that size; this is how "a third node adds throughput" can be measured
# on a machine whose two cores are shared by everything: needs root and the
# cgroup cpu controller, v1 or v2; with TOMCAT_HARNESS, Tomcat is measured
# with the same caps over 2 and 3 nodes instead of the harness's throughput
# section), ROUNDS (with TOMCAT_HARNESS: that many paired rounds, shoal's
# CASES and then Tomcat's matching sticky/rr cases over 2 and 3 nodes,
# uncapped unless NODE_CPU is set; ends with each round's ratios and their
# medians), NODE_GOMAXPROCS and BAL_GOMAXPROCS (the nodes' and the
# balancer's GOMAXPROCS; unset: the Go default, every core), NODE_FLAGS
# (more flags for every shoal node, e.g. --raw-syscalls=false), WRK_ARGS
# (default "-t2 -c32 -d15s"), BENCH_LOCK (a lock file
# that other benchmark harnesses on this machine also take, held during each
# measured load), CASES (a subset of the case names below).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$HERE/out}
WRK_ARGS=${WRK_ARGS:--t2 -c32 -d15s}
CASES=${CASES:-direct-1node balancer-1node sticky-2nodes sticky-2nodes-paced sticky-2nodes-async rr-2nodes rr-3nodes sticky-3nodes apache-ajp-1node apache-ajp-sticky-2nodes kill-under-load}
mkdir -p "$OUT"
FIG="$OUT/figures-$(date +%Y%m%d-%H%M%S).txt"
PAIRS="${FIG%.txt}.pairs"
: > "$FIG"; : > "$PAIRS"
fig() { printf '%s\n' "$*" | tee -a "$FIG"; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck source=../procs.sh
source "$HERE/../procs.sh"
# CPU caps (NODE_CPU): cg_make NAME sets CG to a new cgroup limited to
# NODE_CPU cores (in periods of 10 ms, so that a throttled node stalls
# for at most a few ms); capped CG CMD... runs CMD in it.
CG_DIRS=()
CG_BASE=/sys/fs/cgroup
cg_make() {
    local d period=10000 quota
    quota=$(awk -v c="$NODE_CPU" -v p=$period 'BEGIN { printf "%d", c * p }')
    if [ -f "$CG_BASE/cgroup.controllers" ]; then
        grep -qw cpu "$CG_BASE/cgroup.subtree_control" || echo +cpu > "$CG_BASE/cgroup.subtree_control"
        d="$CG_BASE/$1"; mkdir -p "$d"; echo "$quota $period" > "$d/cpu.max"
    elif [ -d "$CG_BASE/cpu" ]; then
        d="$CG_BASE/cpu/$1"; mkdir -p "$d"
        echo $period > "$d/cpu.cfs_period_us"; echo "$quota" > "$d/cpu.cfs_quota_us"
    else
        log "NODE_CPU: no cgroup cpu controller here"; exit 2
    fi
    CG_DIRS+=("$d"); CG=$d
}
capped() { # only as `capped ... &` (it execs, so that $! is CMD's PID)
    local d=$1; shift
    exec sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$d" "$@"
}
cg_remove() {
    local d
    for d in "${CG_DIRS[@]}"; do rmdir "$d" 2>/dev/null || true; done
    CG_DIRS=()
}
trap 'stop_all; cg_remove' EXIT

locked() { if [ -n "${BENCH_LOCK:-}" ]; then flock -o "$BENCH_LOCK" "$@"; else "$@"; fi; }

log "building shoal"
(cd "$ROOT" && go build -o "$OUT/shoal" ./cmd/shoal)
"$OUT/shoal" node --gen-key > "$OUT/cluster.key"; chmod 600 "$OUT/cluster.key"

http_port()   { echo $((17500 + $1)); }
gossip_port() { echo $((17510 + $1)); }
ajp_port()    { echo $((17520 + $1)); }
BAL=127.0.0.1:17500
APACHE=127.0.0.1:17530
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$OUT/ajp.secret"; chmod 600 "$OUT/ajp.secret"

wait_ready() { # URL
    for _ in $(seq 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
        sleep 0.05
    done
    log "not ready: $1"; return 1
}

# start_nodes N [cluster=on|off] [replication] [log level]
start_nodes() {
    local n=$1 cluster=${2:-on} repl=${3:-sync} level=${4:-warn} i args
    for i in $(seq "$n"); do
        : > "$OUT/node$i.log"
        args=(node --name "n$i" --listen "127.0.0.1:$(http_port "$i")" --log-level "$level")
        [ -n "${AJP:-}" ] && args+=(--ajp "127.0.0.1:$(ajp_port "$i")" --ajp-secret-file "$OUT/ajp.secret")
        if [ -n "${NODE_FLAGS:-}" ]; then
            local extra
            read -ra extra <<< "$NODE_FLAGS"
            args+=("${extra[@]}")
        fi
        if [ "$cluster" = on ]; then
            args+=(--cluster-listen "127.0.0.1:$(gossip_port "$i")" --cluster-key-file "$OUT/cluster.key" --replication "$repl")
            [ "$i" -gt 1 ] && args+=(--join "127.0.0.1:$(gossip_port 1)")
        fi
        if [ -n "${NODE_CPU:-}" ]; then
            cg_make "shoal-bench-n$i"
            GOMAXPROCS=${NODE_GOMAXPROCS:-} capped "$CG" "$OUT/shoal" "${args[@]}" 2>>"$OUT/node$i.log" &
        else
            GOMAXPROCS=${NODE_GOMAXPROCS:-} "$OUT/shoal" "${args[@]}" 2>>"$OUT/node$i.log" &
        fi
        PIDS+=($!)
        wait_ready "http://127.0.0.1:$(http_port "$i")/healthz/ready"
    done
    NODE_PIDS="${PIDS[*]}"
}

# start_balancer N sticky|rr
start_balancer() {
    local args=(balancer --listen "$BAL" --log-level warn) i
    for i in $(seq "$1"); do args+=(--member "n$i=http://127.0.0.1:$(http_port "$i")"); done
    [ "$2" = rr ] && args+=(--sticky "")
    GOMAXPROCS=${BAL_GOMAXPROCS:-} "$OUT/shoal" "${args[@]}" 2>>"$OUT/balancer.log" &
    BAL_PID=$!
    PIDS+=($BAL_PID)
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/${BAL%:*}/${BAL#*:}") 2>/dev/null && break; sleep 0.05; done
    sleep 0.5 # members checked
}

# start_apache N: Apache httpd (Debian's apache2, event MPM, the Tomcat
# harness's worker settings) with the seed's sticky ProxyPass line over
# ajp:// members n1..nN, each shoal node's AJP port with the secret.
start_apache() {
    local d="$OUT/apache" i
    rm -rf "$d"; mkdir -p "$d"; chmod 755 "$d"
    {
        echo "ServerRoot \"$d\""; echo "ServerName 127.0.0.1"; echo "Listen $APACHE"
        [ "$(id -u)" = 0 ] && printf 'User www-data\nGroup www-data\n'
        echo "PidFile \"$d/httpd.pid\""; echo "DefaultRuntimeDir \"$d\""; echo "Mutex pthread default"
        echo "ErrorLog \"$d/error.log\""; echo "LogLevel warn"
        echo 'LogFormat "%a \"%r\" %>s %D" bal'; echo "CustomLog \"$d/access.log\" bal"
        for m in mpm_event authz_core proxy proxy_ajp proxy_http slotmem_shm proxy_balancer lbmethod_byrequests; do
            echo "LoadModule ${m}_module /usr/lib/apache2/modules/mod_$m.so"
        done
        printf 'StartServers 2\nMinSpareThreads 25\nMaxSpareThreads 75\nThreadLimit 64\nThreadsPerChild 25\nMaxRequestWorkers 150\nMaxConnectionsPerChild 0\n'
        echo '<Proxy "balancer://cluster">'
        for i in $(seq "$1"); do
            echo "    BalancerMember \"ajp://127.0.0.1:$(ajp_port "$i")\" route=n$i secret=$(cat "$OUT/ajp.secret")"
        done
        echo '    ProxySet lbmethod=byrequests'; echo '</Proxy>'
        echo 'ProxyPass "/" "balancer://cluster/" stickysession=JSESSIONID|jsessionid nofailover=Off'
    } > "$d/httpd.conf"
    /usr/sbin/apache2 -d "$d" -f "$d/httpd.conf" -DFOREGROUND 2>>"$d/error.log" &
    APACHE_PID=$!
    PIDS+=($APACHE_PID)
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/${APACHE%:*}/${APACHE#*:}") 2>/dev/null && break; sleep 0.05; done
}
apache_pids() { echo "$APACHE_PID $(ps -o pid= --ppid "$APACHE_PID" | tr '\n' ' ')"; }

cookies() { # URL N > file: "user sid" per login
    local i sid
    for i in $(seq "$2"); do
        sid=$(curl -s -D - -o /dev/null -d "user=u$i" "$1/login" | tr -d '\r' | sed -n 's/^Set-Cookie: JSESSIONID=\([^;]*\).*/\1/p')
        [ -n "$sid" ] && echo "u$i $sid"
    done
}

ticks() { # PIDS...: utime+stime in clock ticks
    local p s=0
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] && s=$((s + $(awk '{print $14+$15}' "/proc/$p/stat")))
    done
    echo $s
}

# sysstats PIDS...: read and write system calls (EAGAIN included) and
# context switches (voluntary and not, every thread), summed over PIDS:
# "reads writes switches".
sysstats() {
    local p r=0 w=0 c=0
    for p in "$@"; do
        [ -r "/proc/$p/io" ] || continue
        r=$((r + $(awk '/^syscr/ {print $2}' "/proc/$p/io")))
        w=$((w + $(awk '/^syscw/ {print $2}' "/proc/$p/io")))
        c=$((c + $(cat "/proc/$p"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}')))
    done
    echo "$r $w $c"
}

# lag_buckets NODE_COUNT: every node's shoal_replication_lag_seconds
# buckets (the round trip from sending a change to a backup until it
# acknowledged applying it), summed over nodes and peers: "le count" lines.
lag_buckets() {
    local i
    for i in $(seq "$1"); do
        curl -fsS "http://127.0.0.1:$(http_port "$i")/metrics" 2>/dev/null || true
    done | sed -n 's/^shoal_replication_lag_seconds_bucket{.*le="\([^"]*\)".*} \([0-9.e+]*\)$/\1 \2/p' |
        awk '{ n[$1] += $2 } END { for (le in n) print le, n[le] }' | sort -g
}

# lag_figure BEFORE AFTER: p50 and p99 (the bucket bounds they fall in) of
# the changes acknowledged between two lag_buckets snapshots, and the share
# acknowledged within 2 ms.
lag_figure() {
    { echo "$1" | sed 's/^/before /'; echo "$2" | sed 's/^/after /'; } | awk '
        $1 == "before" { b[$2] = $3; next }
        $1 == "after" { a[$2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
        END {
            total = a[order[n]] - b[order[n]]
            if (total <= 0) { print "lag: no replicated change"; exit }
            for (i = 1; i <= n; i++) {
                c = a[order[i]] - b[order[i]]
                if (p50 == "" && c >= total * 0.50) p50 = order[i]
                if (p99 == "" && c >= total * 0.99) p99 = order[i]
                if (order[i] == "0.002") within2 = c
            }
            printf "replication lag (ack round trip) p50<=%ss p99<=%ss, within 2 ms: %.2f%% of %d changes", p50, p99, 100 * within2 / total, total
        }'
}

measure() { # NAME URL NODE_PIDS BALANCER_PID
    local name=$1 url=$2 np=$3 bp=${4:-} f="$OUT/wrk-$1.txt"
    cookies "$url" 256 > "$OUT/cookies-$name.txt"
    COOKIES_FILE="$OUT/cookies-$name.txt" WRK_THREADS=2 wrk -t2 -c32 -d5s -s "$HERE/counter.lua" "$url" > /dev/null 2>&1
    local n0 b0 n1 b1 s0 s1 nodes lag0 lag1 lag=""
    nodes=$(wc -w <<< "$np")
    lag0=$(lag_buckets "$nodes")
    n0=$(ticks $np); b0=$(ticks $bp); s0=$(sysstats $np)
    COOKIES_FILE="$OUT/cookies-$name.txt" WRK_THREADS=2 locked wrk $WRK_ARGS --latency -s "$HERE/counter.lua" "$url" > "$f" 2>&1
    n1=$(ticks $np); b1=$(ticks $bp); s1=$(sysstats $np)
    lag1=$(lag_buckets "$nodes")
    [ -n "$lag1" ] && lag=" | $(lag_figure "$lag0" "$lag1")"
    local s l req sys
    s=$(sed -n 's/^WRK-SUMMARY //p' "$f"); l=$(sed -n 's/^WRK-LUA //p' "$f")
    req=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<< "$s")
    sys=$(awk -v a="$s0" -v b="$s1" -v n="${req:-1}" 'BEGIN { split(a, x); split(b, y); printf "%.2f reads, %.2f writes, %.2f context switches", (y[1] - x[1]) / n, (y[2] - x[2]) / n, (y[3] - x[3]) / n }')
    fig "shoal $name: $s | $l | node CPU per request=$(( (n1 - n0) * 10000 / ${req:-1} )) us, balancer (or Apache)=$(( (b1 - b0) * 10000 / ${req:-1} )) us | nodes' system calls per request: $sys$lag"
    pair "$name" shoal "$s" $(( (n1 - n0 + b1 - b0) * 10000 / ${req:-1} ))
}

# pair CASE SYSTEM WRK_SUMMARY CPU_US: one line of ROUNDS's same-run table.
pair() {
    echo "${ROUND:-1} $1 $2 $(sed -n 's/.*rps=\([0-9]*\).*/\1/p' <<< "$3") $4" >> "$PAIRS"
}

# kill_under_load: 3 nodes behind the sticky balancer under the /counter
# load; n1 is killed (SIGKILL) 5 s into a 15 s run. Reported: when n2 and
# n3 declared it dead (their log lines' times against the kill's), and
# what the load saw.
kill_under_load() {
    local name=$1 f="$OUT/wrk-$1.txt"
    start_nodes 3 on sync info
    start_balancer 3 sticky
    cookies "http://$BAL" 256 > "$OUT/cookies-$name.txt"
    COOKIES_FILE="$OUT/cookies-$name.txt" WRK_THREADS=2 wrk -t2 -c32 -d15s --latency -s "$HERE/counter.lua" "http://$BAL" > "$f" 2>&1 &
    local wrk_pid=$!
    sleep 5
    local killed; killed=$(date +%s%3N)
    kill -KILL "${PIDS[0]}"
    wait "$wrk_pid" || true
    # The first declaration after the kill; earlier ones were false
    # (a live member starved of CPU long enough), counted apart.
    local i t ms detect="" false=0
    for i in 2 3; do
        ms=""
        while read -r t who; do
            t=$(( $(date -d "$t" +%s%3N) - killed ))
            if [ "$t" -lt 0 ]; then false=$((false + 1)); continue; fi
            if [ "$who" = n1 ]; then ms=$t; break; fi
        done < <(grep 'msg="member declared dead"' "$OUT/node$i.log" | sed -n 's/^time=\([^ ]*\) .* name=\([^ ]*\) .*/\1 \2/p')
        detect+="n$i:${ms:-never}ms "
    done
    fig "shoal $name: n1 killed under load; declared dead after $detect(false declarations of a live member before the kill: $false) | $(sed -n 's/^WRK-SUMMARY //p' "$f") | $(sed -n 's/^WRK-LUA //p' "$f")"
}

shoal_cases() {
fig "## shoal: wrk $WRK_ARGS --latency, GET /counter over 256 logged-in sessions, nodes' GOMAXPROCS ${NODE_GOMAXPROCS:-default}, CPU cap ${NODE_CPU:-none}, balancer's ${BAL_GOMAXPROCS:-default}, node flags ${NODE_FLAGS:-none} ($(date -u +%FT%TZ))"
local c
for c in $CASES; do
    log "case $c"
    case $c in
    direct-1node)        start_nodes 1 off; measure "$c" "http://127.0.0.1:$(http_port 1)" "$NODE_PIDS" ;;
    balancer-1node)      start_nodes 1 off; start_balancer 1 sticky; measure "$c" "http://$BAL" "$NODE_PIDS" "$BAL_PID" ;;
    sticky-2nodes)       start_nodes 2; start_balancer 2 sticky; measure "$c" "http://$BAL" "$NODE_PIDS" "$BAL_PID" ;;
    sticky-2nodes-async) start_nodes 2 on async; start_balancer 2 sticky; measure "$c" "http://$BAL" "$NODE_PIDS" "$BAL_PID" ;;
    rr-2nodes)           start_nodes 2; start_balancer 2 rr; measure "$c" "http://$BAL" "$NODE_PIDS" "$BAL_PID" ;;
    rr-3nodes)           start_nodes 3; start_balancer 3 rr; measure "$c" "http://$BAL" "$NODE_PIDS" "$BAL_PID" ;;
    sticky-3nodes)       start_nodes 3; start_balancer 3 sticky; measure "$c" "http://$BAL" "$NODE_PIDS" "$BAL_PID" ;;
    kill-under-load)     kill_under_load "$c" ;;
    sticky-2nodes-paced) start_nodes 2; start_balancer 2 sticky; DELAY_MS=24 measure "$c" "http://$BAL" "$NODE_PIDS" "$BAL_PID" ;;
    apache-ajp-1node)    AJP=1 start_nodes 1 off; start_apache 1; measure "$c" "http://$APACHE" "$NODE_PIDS" "$(apache_pids)" ;;
    apache-ajp-sticky-2nodes) AJP=1 start_nodes 2; start_apache 2; measure "$c" "http://$APACHE" "$NODE_PIDS" "$(apache_pids)" ;;
    *) log "unknown case $c"; exit 2 ;;
    esac
    stop_all
    cg_remove
done
}

# tomcat_cluster "COUNTS" "MODES": the Tomcat harness's cluster (its
# lib.sh: the seed's config, DeltaManager, async channelSendOptions=8;
# with NODE_CPU each JVM in a CPU cgroup of its own with the same cap as
# shoal's nodes) behind its Apache, in each mode (sticky, rr) over each
# node count (2, 3); measured as measure.sh does (its wrk script, 256
# logins), after a 15 s warm-up (the JIT of a capped JVM warms up slowly).
# Runs in a subshell: lib.sh's functions (stop_all, http_port...) do not
# replace ours.
tomcat_cluster() (
    # shellcheck source=/dev/null
    source "$TOMCAT_HARNESS/lib.sh"
    trap 'stop_all; net_down; cg_remove' EXIT
    net_up
    local n i mode name f np ap n0 a0 n1 a1 s req a="http://127.0.0.1:$APACHE_PORT" capnote=""
    [ -n "${NODE_CPU:-}" ] && capnote=" (each JVM capped at $NODE_CPU cores)"
    for n in $1; do
        for i in $(seq "$n"); do
            make_node "$i" on 8 true
            if [ -n "${NODE_CPU:-}" ]; then
                cg_make "shoal-bench-tomcat$i"
                (echo "$BASHPID" > "$CG/cgroup.procs" && start_node "$i")
            else
                start_node "$i"
            fi
            wait_200 "http://127.0.0.1:$(http_port "$i")/counter" 300 > /dev/null || { log "tomcat$i did not start"; exit 1; }
        done
        wait_members "$n" 120 || exit 1
        for mode in $2; do
            name="tomcat-$mode-${n}nodes"; f="$OUT/wrk-$name.txt"
            make_apache "$mode" $(seq "$n"); start_apache || exit 1
            tool cookies "$a" 256 > "$OUT/cookies-$name.txt"
            COOKIES_FILE="$OUT/cookies-$name.txt" WRK_THREADS=2 wrk -t2 -c32 -d15s -s "$HERE/tools/counter.lua" "$a" > /dev/null 2>&1
            np=""; for i in $(seq "$n"); do np+="$(node_pid "$i") "; done
            ap=$(apache_pids)
            n0=$(ticks $np); a0=$(ticks $ap)
            COOKIES_FILE="$OUT/cookies-$name.txt" WRK_THREADS=2 locked wrk $WRK_ARGS --latency -s "$HERE/tools/counter.lua" "$a" > "$f" 2>&1
            n1=$(ticks $np); a1=$(ticks $ap)
            s=$(sed -n 's/^WRK-SUMMARY //p' "$f"); req=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<< "$s")
            fig "$name$capnote: $s | $(sed -n 's/^WRK-LUA //p' "$f") | Tomcat CPU per request=$(( (n1 - n0) * 10000 / ${req:-1} )) us, Apache=$(( (a1 - a0) * 10000 / ${req:-1} )) us"
            pair "$mode-${n}nodes" tomcat "$s" $(( (n1 - n0 + a1 - a0) * 10000 / ${req:-1} ))
            stop_apache
        done
        stop_all; cg_remove
    done
)

# paired_summary: for each case both systems ran in every round, the
# per-round ratios (shoal's req/s over Tomcat's, and Tomcat's server CPU
# per request, front included, over shoal's) and their medians.
paired_summary() {
    fig "## same-run ratios, round by round (req/s shoal/Tomcat; server CPU per request Tomcat/shoal, nodes and front)"
    awk '
        function isort(a, n,   i, j, v) { for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j > 0 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v } }
        $1 > rounds { rounds = $1 }
        $3 == "shoal" { s[$1 " " $2] = $4; sc[$1 " " $2] = $5; cases[$2] = 1 }
        $3 == "tomcat" { t[$1 " " $2] = $4; tc[$1 " " $2] = $5 }
        END {
            for (c in cases) {
                n = 0; line = ""
                for (i = 1; i <= rounds; i++) {
                    k = i " " c
                    if (!(k in s) || !(k in t) || t[k] == 0 || sc[k] == 0) continue
                    r[++n] = s[k] / t[k]; q[n] = tc[k] / sc[k]
                    line = line sprintf(" round %d: %.2f (%d/%d), CPU %.2f (%d/%d us);", i, r[n], s[k], t[k], q[n], tc[k], sc[k])
                }
                if (n == 0) continue
                isort(r, n); isort(q, n)
                m = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
                mq = (n % 2) ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
                printf "%s: median req/s ratio %.2f, median CPU ratio %.2f over %d rounds:%s\n", c, m, mq, n, line
            }
        }' "$PAIRS" | sort | while read -r l; do fig "$l"; done
}

if [ -n "${ROUNDS:-}" ] && [ -n "${TOMCAT_HARNESS:-}" ]; then
    # Paired rounds: shoal's cases, then Tomcat's matching ones, ROUNDS
    # times, so that each ratio compares runs minutes apart.
    counts=""; modes=""
    for c in $CASES; do
        case $c in
        sticky-2nodes|rr-2nodes) counts+=" 2" ;;&
        sticky-3nodes|rr-3nodes) counts+=" 3" ;;&
        sticky-*nodes) modes+=" sticky" ;;
        rr-*nodes) modes+=" rr" ;;
        esac
    done
    counts=$(tr ' ' '\n' <<< "$counts" | sort -u | tr '\n' ' '); modes=$(tr ' ' '\n' <<< "$modes" | sort -u | tr '\n' ' ')
    [ -n "${counts// /}" ] || { log "ROUNDS: CASES has no sticky-Nnodes or rr-Nnodes case to pair"; exit 2; }
    for ROUND in $(seq "$ROUNDS"); do
        log "round $ROUND of $ROUNDS"
        shoal_cases
        fig "## Apache + Tomcat 10, round $ROUND (nodes: $counts; modes: $modes)"
        tomcat_cluster "$counts" "$modes"
    done
    paired_summary
    log "figures in $FIG"
    exit 0
fi

shoal_cases
if [ -n "${TOMCAT_HARNESS:-}" ] && [ -n "${NODE_CPU:-}" ]; then
    log "Tomcat side, capped at $NODE_CPU cores a node"
    fig "## Apache + Tomcat 10, each JVM capped at $NODE_CPU cores, same run"
    tomcat_cluster "2 3" "sticky rr"
elif [ -n "${TOMCAT_HARNESS:-}" ]; then
    log "Tomcat side: $TOMCAT_HARNESS/measure.sh throughput"
    fig "## Apache + Tomcat 10 (the harness's throughput section), same run"
    WRK_ARGS="$WRK_ARGS" "$TOMCAT_HARNESS/measure.sh" throughput 2>>"$OUT/tomcat.log" | grep -E '^(throughput|cpu) ' | tee -a "$FIG"
fi
log "figures in $FIG"
