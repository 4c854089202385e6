#!/usr/bin/env bash
# Stop the single-node test cluster started by tests/slurm/up.sh.
#
# Only daemons that up.sh started are stopped: they are found through the pid
# files up.sh keeps under $SLURM_TEST_ROOT, and a pid is only signalled after
# /proc/<pid>/comm confirms it still is that daemon (a stale pid file may
# point at a reused pid). A munged/MariaDB that up.sh merely reused (started
# by someone else) has no pid file there and is left alone.
#
# The cluster folder (state, DB, logs) is kept, so up.sh can resume quickly;
# delete $SLURM_TEST_ROOT yourself for a clean slate.
#
# Environment: SLURM_TEST_ROOT [/var/lib/slurm-test], SLURM_TEST_TIMEOUT [60]
set -euo pipefail

export PATH="$PATH:/usr/sbin:/sbin"

ROOT="${SLURM_TEST_ROOT:-/var/lib/slurm-test}"
RUN="$ROOT/run"
TIMEOUT="${SLURM_TEST_TIMEOUT:-60}"

log() { printf '[slurm-down] %s\n' "$*" >&2; }

pid_of() { # pid_of PIDFILE NAME: print the pid if it is a live NAME process
    local pidfile=$1 name=$2 pid
    [ -s "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    echo "$pid"
}

# stop PIDFILE NAME: SIGTERM, then wait (with a deadline) until it is gone.
# A daemon that ignores SIGTERM until the deadline gets SIGKILL.
failed=0
stop() {
    local pidfile=$1 name=$2 pid deadline
    if ! pid=$(pid_of "$pidfile" "$name"); then
        log "$name: not running (from $pidfile)"
        rm -f "$pidfile"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + TIMEOUT))
    while [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$name (pid $pid) still running after ${TIMEOUT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            failed=1
            break
        fi
        sleep 0.2
    done
    log "$name stopped ($((SECONDS + TIMEOUT - deadline))s)"
    rm -f "$pidfile"
}

# Cancel the test jobs first: stopping slurmd does not end running job steps
# (their slurmstepd processes would survive as orphans). Every job on this
# throw-away cluster is a test job. Only done while our slurmctld runs.
if pid_of "$RUN/slurmctld.pid" slurmctld >/dev/null && [ -f /etc/slurm/slurm.conf ]; then
    jobs=$(timeout 20 squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o '%i' 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        log "cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
        # shellcheck disable=SC2086  # one job id per word
        timeout 20 scancel $jobs || true
        deadline=$((SECONDS + TIMEOUT))
        while [ -n "$(timeout 20 squeue -h -t RUNNING,COMPLETING -o '%i' 2>/dev/null || true)" ] &&
            [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.5
        done
    fi
fi

# Reverse start order: compute node, controller, accounting, DB, auth.
stop "$RUN/slurmd.pid" slurmd
stop "$RUN/slurmctld.pid" slurmctld
stop "$RUN/slurmdbd.pid" slurmdbd
stop "$RUN/mysqld/mariadbd.pid" mariadbd
stop "$RUN/munge/munged.pid" munged

if [ "$failed" = 1 ]; then
    log "some daemons had to be killed"
    exit 1
fi
log "test cluster stopped"
