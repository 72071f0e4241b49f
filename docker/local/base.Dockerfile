# The Debian base of the local stand-in images (scripts/docker_local_images.sh):
# a debootstrapped bookworm (imported as BASE), made like debian:bookworm-slim
# (no documentation, no recommends, no services started by package scripts)
# and brought up to date from bookworm-updates and bookworm-security.
ARG BASE
FROM ${BASE}
ARG DEBIAN_MIRROR=http://deb.debian.org/debian
ARG DEBIAN_SECURITY_MIRROR=http://deb.debian.org/debian-security
RUN printf '%s\n' \
        "deb ${DEBIAN_MIRROR} bookworm main" \
        "deb ${DEBIAN_MIRROR} bookworm-updates main" \
        "deb ${DEBIAN_SECURITY_MIRROR} bookworm-security main" > /etc/apt/sources.list \
 && printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
        > /etc/dpkg/dpkg.cfg.d/excludes \
 && echo 'APT::Install-Recommends "false"; APT::Install-Suggests "false";' > /etc/apt/apt.conf.d/no-recommends \
 && printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -y upgrade \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# scripts/docker_local_images.sh flattens the result into one layer, with
# LANG=C.UTF-8 and CMD bash.
