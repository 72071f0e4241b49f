# Stand-in for rabbitmq:3.10 where no registry can be reached: Debian
# bookworm's RabbitMQ 3.10 (rabbitmq-server, Erlang 25), with an entrypoint
# that honours what docker/docker-compose.rabbitmq.yml uses of the official
# image: RABBITMQ_DEFAULT_USER, RABBITMQ_DEFAULT_PASS, RABBITMQ_DEFAULT_VHOST,
# RABBITMQ_ERLANG_COOKIE, configuration files in /etc/rabbitmq/conf.d/, the
# node's data in /var/lib/rabbitmq, run as user rabbitmq, logs on stdout.
# No plugin is enabled (no management UI); rabbitmqctl, rabbitmq-diagnostics
# and rabbitmq-queues are there for operators and health checks.
ARG BASE=webapp-local/debian:bookworm
FROM ${BASE}
# The package's own files this image replaces: its env file (a node name of
# localhost) and its default configuration; its log directory stays, unused.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && rm -f /etc/rabbitmq/rabbitmq-env.conf /etc/rabbitmq/rabbitmq.conf \
 && install -d -o root -g root -m 0755 /etc/rabbitmq/conf.d \
 && install -d -o rabbitmq -g rabbitmq -m 0750 /var/lib/rabbitmq \
 && echo '[].' > /etc/rabbitmq/enabled_plugins
COPY rabbitmq-base.conf /etc/rabbitmq/conf.d/00-base.conf
COPY rabbitmq-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# The home of user rabbitmq: where the server and the CLI tools find the
# Erlang cookie (rabbitmqctl in `docker exec` switches to that user).
ENV HOME=/var/lib/rabbitmq
VOLUME /var/lib/rabbitmq
LABEL org.webapp.local-standin="rabbitmq:3.10"
ENTRYPOINT ["docker-entrypoint.sh"]
# 5672 AMQP; 4369 epmd and 25672 Erlang distribution, between the nodes.
EXPOSE 4369 5672 25672
CMD ["rabbitmq-server"]
