#!/usr/bin/env bash
# Builds the baton-server and baton-agent images FROM scratch with
# `docker build`: stages a build context from the static binaries in BIN_DIR,
# the host's CA bundle and deploy/docker/{passwd,group}. No registry needed.
#   deploy/docker/build.sh BIN_DIR SERVER_IMAGE AGENT_IMAGE [VERSION]
# `make images` calls it after `make build`.
set -euo pipefail
bin=${1:?usage: build.sh BIN_DIR SERVER_IMAGE AGENT_IMAGE [VERSION]}
server_image=${2:?usage: build.sh BIN_DIR SERVER_IMAGE AGENT_IMAGE [VERSION]}
agent_image=${3:?usage: build.sh BIN_DIR SERVER_IMAGE AGENT_IMAGE [VERSION]}
version=${4:-dev}
here=$(cd "$(dirname "$0")" && pwd)
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

for f in "$bin/baton-server" "$bin/baton-agent"; do
  [ -x "$f" ] || { echo "build.sh: $f is missing: run make build" >&2; exit 1; }
  # Both images are FROM scratch: there is no C library to link against.
  if command -v file >/dev/null && ! file -L "$f" | grep -q 'statically linked'; then
    echo "build.sh: $f is not statically linked: build with CGO_ENABLED=0 (make build)" >&2
    exit 1
  fi
done
[ -r "$ca" ] || { echo "build.sh: no CA bundle at $ca (Debian: apt-get install ca-certificates; or set CA_BUNDLE)" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

build() { # NAME IMAGE DIR: the binary, the image, its directory under /var/lib
  rm -rf "${ctx:?}"/*
  mkdir -p "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp" "$ctx/rootfs/var/lib" "$ctx/owned/var/lib/$3"
  chmod 1777 "$ctx/rootfs/tmp"
  chmod 0700 "$ctx/owned/var/lib/$3"
  install -m 0644 "$here/passwd" "$here/group" "$ctx/rootfs/etc/"
  install -m 0644 "$ca" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
  install -m 0755 "$bin/$1" "$ctx/$1"
  # The legacy builder warns on stderr that it is deprecated; keep errors.
  docker build -q -f "$here/${1#baton-}.Dockerfile" --build-arg VERSION="$version" -t "$2" "$ctx" \
    > /dev/null 2> >(grep -v -e 'legacy builder is deprecated' -e 'buildx component' -e 'docs.docker.com/go/buildx' -e '^ *$' >&2)
  echo "built $2"
}
build baton-server "$server_image" baton
build baton-agent "$agent_image" baton-agent
