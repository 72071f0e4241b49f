# Stand-in for python:3.11-slim where no registry can be reached: Debian
# bookworm's Python 3.11 as `python`, with venv and the Mozilla CA bundle
# (ca-certificates), as the official image has them.
ARG BASE=webapp-local/debian:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-venv python-is-python3 ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
LABEL org.webapp.local-standin="python:3.11-slim"
CMD ["python3"]
