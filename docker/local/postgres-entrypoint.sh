#!/bin/bash
# Entrypoint of the local postgres:15 stand-in (docker/local/postgres.Dockerfile),
# with the official image's contract for what this project uses:
#
#   POSTGRES_PASSWORD  (required)     the superuser's password
#   POSTGRES_USER      postgres       the superuser made by initdb
#   POSTGRES_DB        $POSTGRES_USER a database created on first start
#   PGDATA             /var/lib/postgresql/data
#
# On an empty PGDATA: initdb, password authentication (scram-sha-256) for
# every TCP client, the database; the server listens on every address only
# once that is done, so a TCP health check never sees a half-made cluster.
# Started as root, it fixes PGDATA's owner and runs the server as postgres.
set -euo pipefail

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
    exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
    install -d -o postgres -g postgres -m 0700 "$PGDATA"
    chown -R postgres:postgres "$PGDATA"
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "docker-entrypoint: set POSTGRES_PASSWORD (the database is not initialised)" >&2
        exit 1
    fi
    user=${POSTGRES_USER:-postgres}
    database=${POSTGRES_DB:-$user}
    initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
    printf '%s\n' "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    printf '%s\n' "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    # A server on the socket alone while the database is made.
    pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait start
    if [ "$database" != postgres ]; then
        psql --username="$user" --dbname=postgres --set=ON_ERROR_STOP=1 --no-psqlrc \
            --command="CREATE DATABASE \"$database\""
    fi
    pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop
    echo "docker-entrypoint: PostgreSQL initialised; database $database, user $user"
fi
exec "$@"
