#!/bin/bash
# Entrypoint of the local rabbitmq:3.10 stand-in (docker/local/rabbitmq.Dockerfile),
# with the official image's contract for what this project uses:
#
#   RABBITMQ_DEFAULT_USER   the user made when the node starts a new cluster
#   RABBITMQ_DEFAULT_PASS   (instead of guest, who may connect only from
#   RABBITMQ_DEFAULT_VHOST   localhost); a node joining a cluster takes the
#                            cluster's users
#   RABBITMQ_ERLANG_COOKIE  the secret the nodes of a cluster (and the CLI
#                           tools) share; written to ~rabbitmq/.erlang.cookie
#                           on every start (unset: a node makes its own)
#
# The node is rabbit@<host name>; its data is /var/lib/rabbitmq; its
# configuration is every /etc/rabbitmq/conf.d/*.conf file. Started as root,
# it fixes the data directory's owner and runs the server as rabbitmq.
set -euo pipefail

if [ "${1:0:1}" = '-' ]; then
    set -- rabbitmq-server "$@"
fi
if [ "$1" != rabbitmq-server ]; then
    exec "$@"
fi

data=/var/lib/rabbitmq
if [ "$(id -u)" = 0 ]; then
    find "$data" \! -user rabbitmq -exec chown rabbitmq:rabbitmq '{}' +
    if [ -n "${RABBITMQ_ERLANG_COOKIE:-}" ]; then
        install -o rabbitmq -g rabbitmq -m 0400 /dev/null "$data/.erlang.cookie.new"
        printf '%s' "$RABBITMQ_ERLANG_COOKIE" >"$data/.erlang.cookie.new"
        mv -f "$data/.erlang.cookie.new" "$data/.erlang.cookie"
    fi
    defaults=/etc/rabbitmq/conf.d/05-default-user.conf
    rm -f "$defaults"
    if [ -n "${RABBITMQ_DEFAULT_USER:-}${RABBITMQ_DEFAULT_PASS:-}${RABBITMQ_DEFAULT_VHOST:-}" ]; then
        for name in RABBITMQ_DEFAULT_USER RABBITMQ_DEFAULT_PASS RABBITMQ_DEFAULT_VHOST; do
            case ${!name:-} in
                *[[:space:]#]*)
                    echo "docker-entrypoint: $name may not hold white space or '#'" >&2
                    exit 1 ;;
            esac
        done
        install -o root -g rabbitmq -m 0640 /dev/null "$defaults"
        {
            [ -z "${RABBITMQ_DEFAULT_USER:-}" ] || echo "default_user = $RABBITMQ_DEFAULT_USER"
            [ -z "${RABBITMQ_DEFAULT_PASS:-}" ] || echo "default_pass = $RABBITMQ_DEFAULT_PASS"
            [ -z "${RABBITMQ_DEFAULT_VHOST:-}" ] || echo "default_vhost = $RABBITMQ_DEFAULT_VHOST"
        } >"$defaults"
    fi
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$0" "$@"
fi

export HOME=$data
shift
exec /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
