#!/usr/bin/env bash
# The base images docker/Dockerfile and the compose file name
# (python:3.11-slim; postgres:15 and redis:7 for docker/docker-compose.yml,
# rabbitmq:3.10 for docker/docker-compose.rabbitmq.yml), on a Docker host
# that may have no registry.
#
# Each image already present is kept. A missing one is pulled; where it
# cannot be pulled (no registry reachable), a local stand-in of the same name
# is built from Debian bookworm (docker/local/*.Dockerfile): Debian's Python
# 3.11, PostgreSQL 15, Redis 7 and RabbitMQ 3.10, with entrypoints that
# honour what the compose files use. The Debian root file system is made
# once with debootstrap and kept in WEBAPP_IMAGE_CACHE, so later runs on the
# machine (and a machine whose images were removed) skip that step.
#
#   WEBAPP_IMAGE_CACHE      /var/cache/webapp-docker  the debootstrapped rootfs
#   DEBIAN_MIRROR           the mirror apt uses here, else deb.debian.org
#   DEBIAN_SECURITY_MIRROR  http://deb.debian.org/debian-security
#   WEBAPP_LOCAL_IMAGES     always: build stand-ins without trying to pull
#   WEBAPP_COMPOSE_FILE     docker/docker-compose.yml: the images it names
#                           (a relative path is from the repository's root)
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${WEBAPP_IMAGE_CACHE:-/var/cache/webapp-docker}
rootfs_tar=$cache/bookworm-minbase.tar
raw_image=webapp-local/debian-rootfs:bookworm
base_image=webapp-local/debian:bookworm

say() {
    echo "docker_local_images: $*"
}

# The first Debian mirror of apt's own sources (deb822 or one-line format).
apt_mirror() {
    local uri
    uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n 1)
    if [ -z "$uri" ]; then
        uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            | awk '{print $2}' | grep -v security | grep -i debian | head -n 1)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}
mirror=${DEBIAN_MIRROR:-$(apt_mirror)}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

present() {
    docker image inspect "$1" >/dev/null 2>&1
}

# build <tag> <Dockerfile> [--build-arg ...]: its log shown only if it fails.
build() {
    local tag=$1 dockerfile=$2 output
    shift 2
    output=$(mktemp)
    if ! docker build --tag "$tag" --file "$dockerfile" "$@" docker/local >"$output" 2>&1; then
        tail -n 40 "$output" >&2
        rm -f "$output"
        echo "docker_local_images: building $tag failed" >&2
        exit 1
    fi
    rm -f "$output"
}

make_rootfs_tar() {
    command -v debootstrap >/dev/null || {
        echo "docker_local_images: debootstrap is missing (apt-get install debootstrap)" >&2
        exit 1
    }
    local dir
    dir=$(mktemp -d /var/tmp/webapp-rootfs.XXXXXX)
    say "debootstrap bookworm from $mirror (once per machine)"
    debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 || {
        tail -n 20 "$dir.log" >&2
        exit 1
    }
    # What an image does not need: downloaded packages, package lists,
    # documentation (base.Dockerfile keeps later installs from adding them).
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
        "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/*
    find "$dir/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
    mkdir -p "$cache"
    tar -C "$dir" -c . >"$rootfs_tar.tmp"
    mv "$rootfs_tar.tmp" "$rootfs_tar"
    rm -rf "$dir" "$dir.log"
}

build_base() {
    present "$base_image" && return 0
    if ! present "$raw_image"; then
        [ -s "$rootfs_tar" ] || make_rootfs_tar
        say "importing $rootfs_tar as $raw_image"
        docker import - "$raw_image" <"$rootfs_tar" >/dev/null
    fi
    say "building $base_image"
    build "$base_image-layers" docker/local/base.Dockerfile --build-arg "BASE=$raw_image" \
        --build-arg "DEBIAN_MIRROR=$mirror" --build-arg "DEBIAN_SECURITY_MIRROR=$security_mirror"
    # One layer: the files the upgrade replaced are not kept underneath.
    local container
    container=$(docker create "$base_image-layers" bash)
    docker export "$container" | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' \
        - "$base_image" >/dev/null
    docker rm "$container" >/dev/null
    docker rmi "$base_image-layers" >/dev/null
}

# ensure <image> <stand-in Dockerfile>
ensure() {
    local image=$1 dockerfile=$2
    if present "$image"; then
        say "$image: present"
        return 0
    fi
    if [ "${WEBAPP_LOCAL_IMAGES:-}" != always ] && docker pull --quiet "$image" >/dev/null 2>&1; then
        say "$image: pulled"
        return 0
    fi
    say "$image: no registry answered; building a local stand-in ($dockerfile)"
    build_base
    build "$image" "$dockerfile" --build-arg "BASE=$base_image"
}

compose_file=${WEBAPP_COMPOSE_FILE:-docker/docker-compose.yml}
[ -f "$compose_file" ] || {
    echo "docker_local_images: no compose file $compose_file (WEBAPP_COMPOSE_FILE)" >&2
    exit 1
}
# Whether the compose file runs <image>.
named() {
    grep -qE "^[[:space:]]+image: $1[[:space:]]*$" "$compose_file"
}

ensure python:3.11-slim docker/local/python.Dockerfile
for pair in postgres:15=postgres redis:7=redis rabbitmq:3.10=rabbitmq; do
    image=${pair%=*}
    if named "$image"; then
        ensure "$image" "docker/local/${pair#*=}.Dockerfile"
    fi
done
