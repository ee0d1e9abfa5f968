# baton-agent on scratch: the static binary, CA certificates and a non-root
# user. Built by `make images` (deploy/docker/build.sh stages the context).
# There is no git in this image: runs with git sources need a git-capable
# image or an agent installed on the host (deploy/docker/README.md).
FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="baton-agent" \
      org.opencontainers.image.description="Baton CI agent: runs steps in Docker containers" \
      org.opencontainers.image.source="https://github.com/baton-ci/baton" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# rootfs/ holds /etc/passwd and /etc/group (root, and baton: 65532), the CA
# bundle and an empty /tmp (1777); owned/ holds the state directory (identity.json),
# /var/lib/baton-agent, empty and 0700. COPY keeps these modes, and a volume
# mounted there starts with the directory's owner and mode.
COPY rootfs/ /
COPY --chown=65532:65532 owned/var/lib/ /var/lib/
COPY baton-agent /usr/local/bin/baton-agent
# The work directory must be bind-mounted from the Docker host at this same
# path (the daemon mounts step directories from it); see the README.
ENV BATON_STATE_DIR=/var/lib/baton-agent \
    BATON_WORK_DIR=/var/lib/baton-work
USER 65532:65532
WORKDIR /var/lib/baton-agent
VOLUME /var/lib/baton-agent
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/baton-agent"]
