#!/usr/bin/env bash
# One PostgreSQL node of docker-compose.yml under pg_auto_failover (entry point of deploy/postgres/Dockerfile).
#
#   gridcase-pg-node monitor    the monitor: watches the data nodes and promotes the standby when the
#                               primary stops answering (it holds no gridcase data)
#   gridcase-pg-node node       a data node: the first to register becomes the primary, the next its
#                               synchronous standby (a commit is acknowledged once both have it)
#
# Env: PGDATA; for a node PG_MONITOR (the monitor's URI), POSTGRES_PASSWORD (the gridcase role's).
# The first start creates the node (`pg_autoctl create`), every start runs its keeper (`pg_autoctl run`).
# The primary then creates the gridcase role and the three databases (init.sql, idempotent).
set -euo pipefail

role="${1:?usage: gridcase-pg-node monitor|node}"
host="$(hostname)"
mkdir -p "$(dirname "$PGDATA")"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    case "$role" in
        monitor)
            pg_autoctl create monitor --pgdata "$PGDATA" --hostname "$host" --auth trust --ssl-self-signed
            ;;
        node)
            pg_autoctl create postgres --pgdata "$PGDATA" --hostname "$host" --name "$host" \
                --monitor "${PG_MONITOR:?}" --auth trust --ssl-self-signed \
                --dbname postgres --pg-hba-lan
            # the gridcase role from the compose network, by password; settings of our own
            echo "host all gridcase all scram-sha-256" >>"$PGDATA/pg_hba.conf"
            echo "include_if_exists 'gridcase.conf'" >>"$PGDATA/postgresql.conf"
            printf "max_connections = 300\nshared_buffers = 256MB\n" >"$PGDATA/gridcase.conf"
            ;;
        *)
            echo "gridcase-pg-node: unknown role $role" >&2
            exit 2
            ;;
    esac
fi

if [[ "$role" == node ]]; then
    # Once this node is the primary (now or after a failover), make sure the role and databases exist; on a
    # standby they arrive by replication, and the loop ends when it sees them.
    (
        until psql -qAt -d postgres -c "select 1" >/dev/null 2>&1; do sleep 2; done
        while true; do
            if [[ "$(psql -qAt -d postgres -c 'select pg_is_in_recovery()')" == f ]]; then
                psql -q -v ON_ERROR_STOP=1 -v password="${POSTGRES_PASSWORD:?}" -d postgres -f /etc/gridcase/init.sql \
                    && break
            elif [[ "$(psql -qAt -d postgres -c "select count(*) from pg_database where datname = 'escalation'")" == 1 ]]; then
                break
            fi
            sleep 5
        done
    ) &
fi

exec pg_autoctl run --pgdata "$PGDATA"
