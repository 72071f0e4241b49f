# Stand-in for postgres:15 where no registry can be reached: Debian's
# PostgreSQL 15, with an entrypoint that honours the official image's
# POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB and PGDATA.
ARG BASE=webapp-local/debian:bookworm
FROM ${BASE}
# The package would make a cluster of its own; the entrypoint makes PGDATA's.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-common \
 && sed -ri 's/#(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-15 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
LABEL org.webapp.local-standin="postgres:15"
ENTRYPOINT ["docker-entrypoint.sh"]
# Fast shutdown: sessions are cut, what was committed is on disk.
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
