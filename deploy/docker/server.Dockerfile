# baton-server on scratch: the static binary, CA certificates and a non-root
# user. Built by `make images` (deploy/docker/build.sh stages the context);
# no base image is pulled, so no registry is needed.
FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="baton-server" \
      org.opencontainers.image.description="Baton CI server: API, scheduler, UI" \
      org.opencontainers.image.source="https://github.com/baton-ci/baton" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# rootfs/ holds /etc/passwd and /etc/group (root, and baton: 65532), the CA
# bundle and an empty /tmp (1777); owned/ holds the data directory,
# /var/lib/baton, empty and 0700. COPY keeps these modes, and a volume
# mounted there starts with the directory's owner and mode.
COPY rootfs/ /
COPY --chown=65532:65532 owned/var/lib/ /var/lib/
COPY baton-server /usr/local/bin/baton-server
# Defaults as environment variables, so that flags given to `docker run`
# (which win over them) add to them instead of replacing them.
ENV BATON_ADDR=0.0.0.0:8484 \
    BATON_DATA_DIR=/var/lib/baton
USER 65532:65532
WORKDIR /var/lib/baton
VOLUME /var/lib/baton
EXPOSE 8484
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/baton-server"]
