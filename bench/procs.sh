# Sourced by the bench scripts: the processes a script started, and how
# it stops them (only those, by PID).
PIDS=()
# stop_all sends SIGTERM to every PID in PIDS, waits up to 5 s for each,
# then SIGKILLs what is left, and empties PIDS.
stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    PIDS=()
}
