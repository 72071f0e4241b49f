# Stand-in for redis:7 where no registry can be reached: Debian's Redis 7,
# with the official image's entrypoint contract (redis-server's arguments as
# the command, /data as its directory, run as user redis, no protected mode).
ARG BASE=webapp-local/debian:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
LABEL org.webapp.local-standin="redis:7"
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
