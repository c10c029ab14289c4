#!/usr/bin/env bash
# Builds the local test image `orkestrator/busybox:latest` without any registry: a `FROM scratch`
# image holding the static busybox binary from Debian's `busybox-static` package, a symlink for
# every applet (so `/bin/sh`, `sleep`, `echo`, ... exist), `/tmp` and a minimal `/etc/passwd`.
#
# The image is also tagged `busybox:1.36` and `busybox:latest`, so job files that name busybox run
# on an engine that cannot pull.
#
# Idempotent and fast: the image carries a label with the hash of this script and of the busybox
# binary; when an image with the same hash exists, nothing is built (only missing tags are added).
#
# Environment:
#   BUSYBOX   path of a static busybox binary (default: /bin/busybox, installed with apt if absent)
#   FORCE=1   rebuild even when the image is up to date
set -euo pipefail

IMAGE="orkestrator/busybox:latest"
ALIASES=("busybox:1.36" "busybox:latest")
LABEL="org.orkestrator.test-image.hash"
BUSYBOX="${BUSYBOX:-/bin/busybox}"

log() { printf 'build-test-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker CLI not found (install docker.io)"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (is dockerd running?)"

is_static() {
    local bin="$1"
    [ -x "$bin" ] || return 1
    if command -v file >/dev/null 2>&1; then
        file -L "$bin" | grep -Eq 'statically linked|static-pie linked'
    else
        # ldd exits non-zero ("not a dynamic executable") for static binaries.
        ! ldd "$bin" >/dev/null 2>&1
    fi
}

if ! is_static "$BUSYBOX"; then
    if [ "$BUSYBOX" = /bin/busybox ] && command -v apt-get >/dev/null 2>&1; then
        log "no static busybox at $BUSYBOX; installing busybox-static"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y busybox-static >/dev/null 2>&1 ||
            { apt-get update >/dev/null && apt-get install -y busybox-static >/dev/null; }
    fi
    if ! is_static "$BUSYBOX"; then
        # No static busybox here (e.g. not Debian): an engine that can pull gets the public image.
        if docker image inspect "$IMAGE" >/dev/null 2>&1; then
            log "no static busybox to rebuild from; keeping the existing $IMAGE"
            exit 0
        fi
        if docker pull busybox:1.36 >/dev/null 2>&1; then
            docker tag busybox:1.36 "$IMAGE"
            docker tag busybox:1.36 busybox:latest
            log "pulled busybox:1.36 and tagged it $IMAGE"
            exit 0
        fi
        die "$BUSYBOX is missing or not statically linked, and busybox:1.36 cannot be pulled (apt-get install -y busybox-static)"
    fi
fi

script_path="${BASH_SOURCE[0]}"
hash="$(cat "$script_path" "$BUSYBOX" | sha256sum | cut -c1-16)"

current="$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
if [ "${FORCE:-0}" != 1 ] && [ "$current" = "$hash" ]; then
    log "$IMAGE is up to date ($hash)"
else
    ctx="$(mktemp -d)"
    trap 'rm -rf "$ctx"' EXIT
    root="$ctx/rootfs"
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root"
    chmod 1777 "$root/tmp"
    cp "$BUSYBOX" "$root/bin/busybox"
    chmod 0755 "$root/bin/busybox"
    # One symlink per applet, all in /bin (which is on every default PATH).
    for applet in $("$BUSYBOX" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL $LABEL="$hash"
CMD ["sh"]
EOF
    log "building $IMAGE ($hash)"
    # The legacy builder needs no buildx plugin and no registry (FROM scratch pulls nothing).
    # Its deprecation notice goes to stderr; show the output only when the build fails.
    if ! DOCKER_BUILDKIT=0 docker build --quiet --tag "$IMAGE" "$ctx" >"$ctx/build.log" 2>&1; then
        cat "$ctx/build.log" >&2
        die "docker build failed"
    fi
fi

for alias in "${ALIASES[@]}"; do
    docker tag "$IMAGE" "$alias"
done
log "ready: $IMAGE (also tagged ${ALIASES[*]})"
