#!/usr/bin/env bash
# .ci/docker.sh — make sure this machine has a working Docker engine and a local base image
# named exactly `python:3.11-slim-bookworm`, so a Dockerfile `FROM python:3.11-slim-bookworm` builds
# without pulling (no container registry is reachable here).
#
#   bash .ci/docker.sh            # idempotent; ~1-3 s when everything is already in place
#   bash .ci/docker.sh --rebuild  # re-create the base image (re-uses the cached .debs under /tmp)
#
# What it does (each step skipped when already done):
#   1. `docker info` answers? else apt-get install docker.io (only if dockerd is missing) and start
#      dockerd in the background (log: /tmp/dockerd.log), wait until it answers.
#   2. image python:3.11-slim-bookworm present? else debootstrap (minbase) Debian bookworm with
#      python3 / python3-venv / python3-pip / ca-certificates + the host CA bundle + /etc/pip.conf,
#      tar it (cached in /tmp/ci-docker/) and `docker import` it with ENV/CMD like the official image.
#   3. verify: `docker run ... python -c 'import ssl, venv'` and a throwaway `docker build` that
#      creates a venv and pip-installs `six` from PyPI (cached per image id, so it runs once).
# Requires root. All progress goes to stderr; stdout stays empty.
#
# Flags: none needed. Storage driver overlay2 works here (vfs only as a fallback). Builds and
# containers on the default bridge reach PyPI and deb.debian.org (DNS and TLS fine with the CA bundle
# in the image); `--network host` works too; `-p 127.0.0.1:P:P` publishing works.
# The image differs from the official one where it can matter: Debian's Python 3.11.2 and pip
# 23.0.1 (a venv starts with pip 23.0.1: `pip install --upgrade pip` first), system-wide
# `pip install` goes to /usr/local/lib/python3.11/dist-packages (not site-packages), no gcc.
# BuildKit: /usr/local/bin/docker (28.x client) has no buildx plugin, so `docker build` uses the
# legacy builder (prints a DEPRECATED note) and rejects BuildKit-only syntax (RUN --mount, COPY
# --chmod). For those use Debian's client: DOCKER_BUILDKIT=1 /usr/bin/docker build ...
# Never add `# syntax=docker/dockerfile:...` or `--pull`: both need a registry.
set -euo pipefail

IMAGE="python:3.11-slim-bookworm"
SUITE="bookworm"
MIRROR="http://deb.debian.org/debian"
SECURITY_MIRROR="http://deb.debian.org/debian-security"
CACHE_DIR="/tmp/ci-docker"
DEB_CACHE="$CACHE_DIR/debs"
TARBALL="$CACHE_DIR/python-3.11-slim-bookworm.rootfs.tar"
DOCKERD_LOG="/tmp/dockerd.log"
DOCKERD_TIMEOUT="${DOCKERD_TIMEOUT:-90}"
HOST_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"
INCLUDE_PKGS="ca-certificates,python3,python3-venv,python3-pip"

log() { printf '[docker.sh] %s\n' "$*" >&2; }
die() { printf '[docker.sh] ERROR: %s\n' "$*" >&2; exit 1; }

REBUILD=0
for arg in "$@"; do
  case "$arg" in
    --rebuild) REBUILD=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ {print; next} NR > 1 {exit}' "$0" >&2; exit 0 ;;
    *) die "unknown argument: $arg (use --rebuild or nothing)" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "must run as root (needs apt-get, dockerd and debootstrap)"

# one run at a time (parallel callers wait here instead of racing on dockerd / the tarball / apt)
exec 9>"/tmp/ci-docker.lock"
flock -w 900 9 || die "another run holds /tmp/ci-docker.lock for more than 15 min"

APT_LOG=/tmp/ci-apt.log
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update (log: $APT_LOG)"
    apt-get update -qq >>"$APT_LOG" 2>&1 || { tail -n 20 "$APT_LOG" >&2; die "apt-get update failed"; }
    APT_UPDATED=1
  fi
  log "apt-get install -y $* (log: $APT_LOG)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$APT_LOG" 2>&1 \
    || { tail -n 20 "$APT_LOG" >&2; die "apt-get install $* failed"; }
}

docker_ok() { timeout 20 docker info >/dev/null 2>&1; }

# MTU of the interface that carries the default route. eth0 here has 1400, docker's bridge default
# is 1500; builds reached PyPI with 1500 too, but a bridge MTU above the uplink's is a classic cause
# of stalled TLS transfers, so dockerd gets --mtu=<uplink MTU> as a precaution.
host_mtu() {
  local dev
  dev=$(ip -o route show default 2>/dev/null | awk '{for(i=1;i<NF;i++) if($i=="dev"){print $(i+1); exit}}' || true)
  if [ -n "$dev" ] && [ -r "/sys/class/net/$dev/mtu" ]; then cat "/sys/class/net/$dev/mtu"; else echo 1500; fi
}

# pids of live dockerd processes (a killed one can linger a moment as a zombie: ignore it)
live_dockerd() { ps -eo pid=,stat=,comm= | awk '$3 == "dockerd" && $2 !~ /^Z/ {print $1}'; }

start_dockerd() {
  local mtu flags
  mtu=$(host_mtu)
  flags=(--storage-driver=overlay2)
  # overlay2 needs overlayfs in the kernel; fall back to vfs (slow, big) where it is missing.
  if ! grep -qw overlay /proc/filesystems; then
    log "overlayfs not available in this kernel: using the vfs storage driver (slow, large)"
    flags=(--storage-driver=vfs)
  fi
  if [ "$mtu" -lt 1500 ]; then flags+=("--mtu=$mtu"); fi
  # A dockerd that was killed leaves /var/run/docker.pid; while its pid lingers (even as a zombie)
  # a new dockerd refuses to start ("pid file found"). No live dockerd here, so the file is stale.
  if [ -e /var/run/docker.pid ]; then
    log "removing stale /var/run/docker.pid (pid $(cat /var/run/docker.pid 2>/dev/null) is not a live dockerd)"
    rm -f /var/run/docker.pid
  fi
  # Same for the containerd that dockerd manages: a stale pid file makes dockerd wait for it.
  local cpid_file=/var/run/docker/containerd/containerd.pid cpid
  if [ -e "$cpid_file" ]; then
    cpid=$(cat "$cpid_file" 2>/dev/null || true)
    if ! ps -o stat=,comm= -p "${cpid:-0}" 2>/dev/null | awk '$1 !~ /^Z/ && $2 == "containerd" {ok=1} END {exit !ok}'; then
      log "removing stale $cpid_file"
      rm -f "$cpid_file"
    fi
  fi
  log "starting dockerd ${flags[*]} in the background (log: $DOCKERD_LOG)"
  # setsid + nohup: dockerd outlives this script and the shell that called it.
  # 9>&-: do not hand our lock fd to the long-lived daemon.
  setsid nohup dockerd "${flags[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
}

ensure_engine() {
  if docker_ok; then
    log "docker engine already answering ($(docker version --format 'server {{.Server.Version}}' 2>/dev/null || echo '?'))"
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    log "dockerd not found (a docker client alone may be at /usr/local/bin/docker): installing docker.io"
    apt_install docker.io
  fi
  command -v dockerd >/dev/null 2>&1 || die "dockerd still missing after installing docker.io"
  command -v docker >/dev/null 2>&1 || die "no docker client on PATH"

  local waited=0 started=0
  until docker_ok; do
    if [ -z "$(live_dockerd)" ]; then
      if [ "$started" -ge 3 ]; then
        tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
        die "dockerd exited during start-up $started times (see $DOCKERD_LOG)"
      fi
      [ "$started" = 0 ] || { log "dockerd exited during start-up; trying again"; sleep 2; }
      start_dockerd; started=$((started + 1))
    elif [ "$waited" = 0 ] && [ "$started" = 0 ]; then
      log "a dockerd process already runs (pid $(live_dockerd | tr '\n' ' ')); waiting for it to answer"
    fi
    if [ "$waited" -ge "$DOCKERD_TIMEOUT" ]; then
      tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
      die "docker engine did not answer within ${DOCKERD_TIMEOUT}s (see $DOCKERD_LOG)"
    fi
    sleep 1; waited=$((waited + 1))
  done
  log "docker engine up after ${waited}s: $(docker info --format 'server {{.ServerVersion}}, storage {{.Driver}}, cgroup {{.CgroupDriver}}' 2>/dev/null)"
}

# pip settings for inside the image: the host's CA bundle, plus the host's index settings when they
# point to an http(s) index (file:// indexes, find-links dirs and constraint files of the host do not
# exist inside the image and are dropped).
pip_conf() {
  printf '[global]\ncert = %s\ntimeout = 180\ndisable-pip-version-check = true\n' "$HOST_CA_BUNDLE"
  local cfg=""
  if command -v pip >/dev/null 2>&1; then cfg=$(pip config list 2>/dev/null || true); fi
  printf '%s\n' "$cfg" | python3 -c '
import os, sys
idx, extra, links = None, [], []
env = {"PIP_INDEX_URL": "index-url", "PIP_EXTRA_INDEX_URL": "extra-index-url", "PIP_FIND_LINKS": "find-links"}
items = []
for line in sys.stdin:
    line = line.strip()
    if "=" not in line:
        continue
    key, _, val = line.partition("=")
    items.append((key.rsplit(".", 1)[-1], val.strip().strip("\x27\"")))
for var, key in env.items():
    if os.environ.get(var):
        items.append((key, os.environ[var]))
for key, val in items:
    urls = [u for u in val.split() if u.startswith(("http://", "https://"))]
    if key == "index-url" and urls:
        idx = urls[0]
    elif key == "extra-index-url":
        extra += [u for u in urls if u not in extra]
    elif key == "find-links":
        links += [u for u in urls if u not in links]
if idx:
    print("index-url = " + idx)
if extra:
    print("extra-index-url = " + " ".join(extra))
if links:
    print("find-links = " + " ".join(links))
'
}

ROOTFS=""
cleanup_rootfs() {
  if [ -n "$ROOTFS" ] && [ -d "$ROOTFS" ]; then
    local m
    awk -v r="$ROOTFS" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$ROOTFS"
  fi
}

build_tarball() {
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  [ -r "$HOST_CA_BUNDLE" ] || die "host CA bundle $HOST_CA_BUNDLE missing"
  mkdir -p "$CACHE_DIR" "$DEB_CACHE"
  ROOTFS=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
  trap cleanup_rootfs EXIT
  log "debootstrap --variant=minbase --include=$INCLUDE_PKGS $SUITE $ROOTFS $MIRROR (log: $CACHE_DIR/debootstrap.log)"
  if ! debootstrap --variant=minbase --include="$INCLUDE_PKGS" --cache-dir="$DEB_CACHE" \
      "$SUITE" "$ROOTFS" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1; then
    tail -n 30 "$CACHE_DIR/debootstrap.log" >&2
    tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap failed (see $CACHE_DIR/debootstrap.log)"
  fi

  log "customising the rootfs (apt sources, security updates, CA bundle, pip.conf, /usr/local/bin links)"
  # apt sources like the official debian:bookworm image (deb822), incl. updates + security.
  rm -f "$ROOTFS/etc/apt/sources.list"
  cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # apt settings of the official Debian images: no caches, no translations, no kept suggests.
  cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$ROOTFS/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$ROOTFS/etc/apt/apt.conf.d/docker-autoremove-suggests"

  # The network here intercepts TLS: the host's extra CAs must be trusted inside the image, also
  # after a Dockerfile re-runs update-ca-certificates.
  mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
  fi
  cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true
  printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"; chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
  mount -t proc proc "$ROOTFS/proc"
  chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates in the rootfs failed"
  cp "$HOST_CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
  log "apt-get update && apt-get upgrade inside the rootfs (bookworm-updates / -security)"
  chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive sh -c \
    'apt-get update -qq && apt-get -y -qq --no-install-recommends upgrade' >>"$CACHE_DIR/debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE_DIR/debootstrap.log" >&2; die "apt-get upgrade inside the rootfs failed"; }
  # upgrade may have replaced the bundle: put the host's back.
  cp "$HOST_CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
  umount "$ROOTFS/proc"

  # pip: trust the CA bundle, no host-only indexes.
  pip_conf >"$ROOTFS/etc/pip.conf"
  log "image /etc/pip.conf: $(tr '\n' ' ' <"$ROOTFS/etc/pip.conf")"
  # Like the official image: `pip install` outside a venv is allowed (no PEP 668 marker) ...
  rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED
  # ... and python, python3, pip, pip3 are found in /usr/local/bin.
  ln -sf /usr/bin/python3 "$ROOTFS/usr/local/bin/python"
  ln -sf /usr/bin/python3 "$ROOTFS/usr/local/bin/python3"
  ln -sf /usr/bin/pip3 "$ROOTFS/usr/local/bin/pip"
  ln -sf /usr/bin/pip3 "$ROOTFS/usr/local/bin/pip3"

  # Keep it small: no apt lists/caches, docs (copyright files kept), man pages, locales, logs.
  rm -f "$ROOTFS/usr/sbin/policy-rc.d"
  chroot "$ROOTFS" apt-get clean
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/cache/debconf/*-old \
         "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/usr/share/man/* \
         "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/* "$ROOTFS"/tmp/* "$ROOTFS"/root/.cache
  find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  find "$ROOTFS/usr/lib/python3" "$ROOTFS"/usr/lib/python3.* -name __pycache__ -type d -prune \
       -exec rm -rf {} + 2>/dev/null || true
  : >"$ROOTFS/etc/resolv.conf"; : >"$ROOTFS/etc/machine-id"; rm -f "$ROOTFS/etc/hostname"

  chroot "$ROOTFS" python3 -c 'import platform; print(platform.python_version())' >"$CACHE_DIR/python-version"
  log "writing $TARBALL"
  tar -C "$ROOTFS" --numeric-owner --xattrs -cf "$TARBALL.partial" . || die "tar of the rootfs failed"
  mv -f "$TARBALL.partial" "$TARBALL"
  cleanup_rootfs; ROOTFS=""; trap - EXIT
}

ensure_image() {
  if [ "$REBUILD" = 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "image $IMAGE already present ($(docker image inspect --format '{{.Id}}' "$IMAGE" | cut -c1-19))"
    return 0
  fi
  if [ "$REBUILD" = 1 ] || [ ! -s "$TARBALL" ] || [ ! -s "$CACHE_DIR/python-version" ]; then
    rm -f "$TARBALL"
    build_tarball
  else
    log "re-using cached rootfs tarball $TARBALL"
  fi
  local pyver old_id
  pyver=$(cat "$CACHE_DIR/python-version")
  old_id=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  log "docker import $TARBALL as $IMAGE (python $pyver)"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PYTHON_VERSION=$pyver" \
    --change 'CMD ["python3"]' \
    --change 'LABEL org.opencontainers.image.description="local stand-in for python:3.11-slim-bookworm: debootstrap bookworm minbase + Debian python3, python3-venv, python3-pip; built by .ci/docker.sh"' \
    --message "built by .ci/docker.sh from debootstrap $SUITE minbase" \
    "$TARBALL" "$IMAGE" >/dev/null || die "docker import failed"
  # drop the image this one replaces (kept when other images are built on it)
  if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    docker image rm "$old_id" >/dev/null 2>&1 && log "removed the previous base image ${old_id:7:12}" || true
  fi
}

verify_image() {
  local id stamp out
  id=$(docker image inspect --format '{{.Id}}' "$IMAGE" | sed 's/^sha256://')
  out=$(docker run --rm "$IMAGE" python -c 'import ssl, venv; print("ok")' 2>&1) \
    || die "docker run $IMAGE python failed: $out"
  [ "$out" = ok ] || die "docker run $IMAGE printed '$out' instead of ok"
  log "docker run --rm $IMAGE python -c 'import ssl, venv' -> ok"

  stamp="$CACHE_DIR/verified-build-$id"
  if [ -e "$stamp" ]; then
    log "build check already passed for this image id (stamp $stamp)"
  else
    local ctx
    ctx=$(mktemp -d /tmp/ci-docker-verify.XXXXXX)
    cat >"$ctx/Dockerfile" <<EOF
FROM $IMAGE
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir six
RUN /opt/venv/bin/python -c 'import six; print("six", six.__version__)'
EOF
    log "throwaway docker build: venv + pip install six from PyPI"
    if ! DOCKER_BUILDKIT=0 docker build -t ci-docker-verify:tmp "$ctx" >"$ctx/build.log" 2>&1; then
      tail -n 30 "$ctx/build.log" >&2
      rm -rf "$ctx"
      die "docker build FROM $IMAGE with pip install failed"
    fi
    docker image rm -f ci-docker-verify:tmp >/dev/null 2>&1 || true
    rm -rf "$ctx"
    mkdir -p "$CACHE_DIR"; : >"$stamp"
    log "throwaway docker build passed (pip reached PyPI inside the build)"
  fi
  log "base image $IMAGE: $(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"
}

ensure_engine
ensure_image
verify_image
log "done: no extra docker build/run flags needed (BuildKit-only syntax: DOCKER_BUILDKIT=1 /usr/bin/docker build)"
