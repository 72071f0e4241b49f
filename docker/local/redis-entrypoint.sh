#!/bin/bash
# Entrypoint of the local redis:7 stand-in (docker/local/redis.Dockerfile),
# with the official image's contract: the command is redis-server and its
# arguments (arguments alone are given to redis-server), the working
# directory /data holds the append-only file, and the server runs as user
# redis. Protected mode is off unless the command sets it, as in the official
# image: the server is reached from other containers, never published beyond
# the host unless its compose file says so.
set -euo pipefail

if [ "${1:0:1}" = '-' ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" != redis-server ]; then
    exec "$@"
fi
if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis .
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
case " $* " in
    *" --protected-mode "*) ;;
    *) set -- "$@" --protected-mode no ;;
esac
exec "$@"
