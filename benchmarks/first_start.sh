#!/usr/bin/env bash
# first_start.sh [REPO] [REF]: the first start a new user waits for, from a fresh clone to a ready system.
#
# Clones REF (default HEAD) of REPO (default this repository) into a new temporary directory, runs
# `make run ARGS="--port 0"` there (a free port), and waits until the printed base URL answers 200 on
# /readyz. Prints the phase lines `make run` wrote and the seconds from `git clone` to ready, then stops
# the system (its process group, by id), starts it again in the same clone (a later start: the venv and the
# data are there) and prints the seconds from `make run` to /readyz 200 again, then stops it and removes
# the clone. Caches are whatever the environment has:
# for a cold start give empty ones, e.g.
#
#   UV_CACHE_DIR=$(mktemp -d) PIP_NO_CACHE_DIR=1 benchmarks/first_start.sh
#   INSTALLER=pip benchmarks/first_start.sh         # the pip fallback
set -euo pipefail

REPO="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
REF="${2:-HEAD}"
DIR="$(mktemp -d /tmp/gridcase-first-start-XXXXXX)"
PGID=""

# shellcheck disable=SC2317  # (invoked by the trap)
finish() {
    set +e
    if [[ -n "$PGID" ]]; then
        kill -TERM -- "-$PGID" 2>/dev/null
        for _ in {1..50}; do kill -0 -- "-$PGID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$PGID" 2>/dev/null
    fi
    rm -rf "$DIR"
}
trap finish EXIT

start=$(date +%s.%N)
git clone -q "$REPO" "$DIR/gridcase"
git -C "$DIR/gridcase" checkout -q "$REF"
cd "$DIR/gridcase"
setsid make run ARGS="--port 0" >run.log 2>&1 &
PGID=$!
base=""
until [[ -n "$base" ]]; do
    kill -0 "$PGID" 2>/dev/null || { cat run.log; echo "first_start: make run exited" >&2; exit 1; }
    base=$(grep -oP 'gridcase is up at \K\S+(?=  \(data in )' run.log || true)  # a whole line, never one half written
    sleep 0.1
done
until curl -sf "$base/readyz" >/dev/null; do sleep 0.1; done
end=$(date +%s.%N)
grep -E '^(setup|run|up): ' run.log || true
awk -v a="$start" -v b="$end" 'BEGIN { printf "first start: %.1f s from git clone to /readyz 200\n", b - a }'

stop() {
    kill -TERM -- "-$PGID" 2>/dev/null
    for _ in {1..100}; do kill -0 -- "-$PGID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$PGID" 2>/dev/null || true
    PGID=""
}

ready() {  # waits until the base URL printed in run.log answers 200 on /readyz
    local base=""
    until [[ -n "$base" ]]; do
        kill -0 "$PGID" 2>/dev/null || { cat run.log; echo "first_start: make run exited" >&2; exit 1; }
        base=$(grep -oP 'gridcase is up at \K\S+(?=  \(data in )' run.log || true)  # a whole line, never one half written
        sleep 0.1
    done
    until curl -sf "$base/readyz" >/dev/null; do sleep 0.1; done
}

stop
start=$(date +%s.%N)
setsid make run ARGS="--port 0" >run.log 2>&1 &
PGID=$!
ready
end=$(date +%s.%N)
grep -E '^up: ' run.log || true
awk -v a="$start" -v b="$end" -v l="$(cut -d' ' -f1-3 /proc/loadavg)" \
    'BEGIN { printf "later start: %.1f s from make run to /readyz 200 (load average %s)\n", b - a, l }'
