#!/usr/bin/env bash
# with-servers.sh CMD [ARGS...]
#
# Runs CMD with a RabbitMQ and a PostgreSQL for the tests (`make test`, `make bench` use it):
#   - GRIDCASE_TEST_BROKER_URL already set: it is used and no RabbitMQ is started. Otherwise, if RabbitMQ
#     is installed, a throwaway node is started on free loopback ports and these are exported:
#       GRIDCASE_TEST_BROKER_URL      amqp://guest:guest@127.0.0.1:PORT/%2F
#       GRIDCASE_TEST_RABBITMQ_BASE   its base directory (`deploy/local/rabbitmq.sh restart|kill|start $BASE`)
#   - the same for PostgreSQL:
#       GRIDCASE_TEST_POSTGRES_URL    postgresql://postgres@127.0.0.1:PORT/postgres (admin; tests create databases)
#       GRIDCASE_TEST_POSTGRES_BASE   its base directory (`deploy/local/postgres.sh stop|start $BASE`)
#   - a server that is not installed is noted in one line and CMD runs anyway (its tests skip, or fail
#     under CI=true); a server that is installed but fails to start is an error.
# Whatever this script started is stopped (by pid) when CMD ends, fails or is interrupted; its
# directory is removed when CMD succeeded and kept (for the logs) when it failed. Exits with CMD's code.
#
# Env: GRIDCASE_TEST_START_SERVERS=0 starts nothing; RABBITMQ_BIN_DIR, PG_BINDIR as for the scripts.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RMQ_BIN="${RABBITMQ_BIN_DIR:-/usr/lib/rabbitmq/bin}"

note() { echo "with-servers: $*" >&2; }

if (($# == 0)); then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi

BASE=""
RMQ_STARTED=""
PG_STARTED=""
CMD_RC=""

# shellcheck disable=SC2317  # (invoked by the traps)
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n "$CMD_RC" ]] && rc=$CMD_RC
    if [[ -n "$RMQ_STARTED" ]]; then
        "$HERE/rabbitmq.sh" stop "$RMQ_STARTED" 2>/dev/null || note "warning: could not stop RabbitMQ in $RMQ_STARTED"
    fi
    if [[ -n "$PG_STARTED" ]]; then
        "$HERE/postgres.sh" stop "$PG_STARTED" 2>/dev/null || note "warning: could not stop PostgreSQL in $PG_STARTED"
    fi
    if [[ -n "$BASE" ]]; then
        if ((rc == 0)); then
            rm -rf "$BASE"
        else
            note "servers stopped; their logs are kept in $BASE"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

make_base() {
    if [[ -z "$BASE" ]]; then
        BASE="$(mktemp -d "${TMPDIR:-/tmp}/gridcase-servers-XXXXXX")"
        chmod 755 "$BASE"           # the postgres user must be able to enter it
    fi
}

rabbitmq_installed() { [[ -x "$RMQ_BIN/rabbitmq-server" ]] && command -v epmd >/dev/null; }

postgres_installed() {
    if [[ -n "${PG_BINDIR:-}" ]]; then
        [[ -x "$PG_BINDIR/initdb" ]] || return 1
    else
        compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || return 1
    fi
    ((EUID != 0)) || id postgres >/dev/null 2>&1
}

t0=$SECONDS
if [[ "${GRIDCASE_TEST_START_SERVERS:-1}" == 0 ]]; then
    note "GRIDCASE_TEST_START_SERVERS=0: starting no servers"
else
    if [[ -n "${GRIDCASE_TEST_POSTGRES_URL:-}" ]]; then
        note "using PostgreSQL at GRIDCASE_TEST_POSTGRES_URL"
    elif postgres_installed; then
        make_base
        PG_STARTED="$BASE/postgres"
        GRIDCASE_TEST_POSTGRES_URL="$("$HERE/postgres.sh" start "$PG_STARTED")"
        export GRIDCASE_TEST_POSTGRES_URL
        export GRIDCASE_TEST_POSTGRES_BASE="$PG_STARTED"
    else
        note "PostgreSQL is not installed (apt-get install postgresql): its tests will skip"
    fi

    if [[ -n "${GRIDCASE_TEST_BROKER_URL:-}" ]]; then
        note "using RabbitMQ at GRIDCASE_TEST_BROKER_URL"
    elif rabbitmq_installed; then
        make_base
        RMQ_STARTED="$BASE/rabbitmq"
        GRIDCASE_TEST_BROKER_URL="$("$HERE/rabbitmq.sh" start "$RMQ_STARTED")"
        export GRIDCASE_TEST_BROKER_URL
        export GRIDCASE_TEST_RABBITMQ_BASE="$RMQ_STARTED"
    else
        note "RabbitMQ is not installed (apt-get install rabbitmq-server): its tests will skip"
    fi
    if [[ -n "$BASE" ]]; then
        note "servers ready in $((SECONDS - t0)) s (under $BASE)"
    fi
fi

# CMD runs in the foreground: Ctrl-C reaches it (and us) as usual, and the traps run once it has ended.
# (A TERM sent to this script alone is acted on when CMD ends: bash defers traps during a foreground
# command. Signal the process group to stop everything at once.)
set +e
"$@"
CMD_RC=$?
exit "$CMD_RC"
