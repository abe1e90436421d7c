#!/usr/bin/env bash
# Install the pinned kind, kubectl and helm used by the e2e workflow (Linux amd64), each verified
# against the checksum published next to it. Idempotent: a tool already at the pinned version is kept.
#
#   k8s/install-tools.sh                     # into /usr/local/bin (sudo when not root)
#   BIN_DIR=$HOME/.local/bin k8s/install-tools.sh
set -euo pipefail

KIND_VERSION="${KIND_VERSION:-v0.30.0}"        # default node image: Kubernetes v1.34 (KServe needs >= 1.32)
KUBECTL_VERSION="${KUBECTL_VERSION:-v1.34.0}"  # within one minor version of the kind node
HELM_VERSION="${HELM_VERSION:-v3.17.2}"        # the version the chart tests run with (.ci/tools.sh)
BIN_DIR="${BIN_DIR:-/usr/local/bin}"

log() { printf '[install-tools] %s\n' "$*" >&2; }
SUDO=""
if [ ! -w "$BIN_DIR" ] && [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fetch() { curl --fail --silent --show-error --location --retry 5 --retry-all-errors -o "$2" "$1"; }
verify() {  # verify FILE EXPECTED_SHA256
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$2" ] || { log "checksum mismatch for $1: got $got, expected $2"; exit 1; }
}
install_bin() { $SUDO install -m 0755 "$1" "$BIN_DIR/$2"; log "$2 -> $BIN_DIR/$2"; }

if [ "$(kind version 2>/dev/null | awk '{print $2}')" != "$KIND_VERSION" ]; then
  base="https://github.com/kubernetes-sigs/kind/releases/download/$KIND_VERSION"
  fetch "$base/kind-linux-amd64" "$tmp/kind"
  fetch "$base/kind-linux-amd64.sha256sum" "$tmp/kind.sha256sum"
  verify "$tmp/kind" "$(cut -d' ' -f1 "$tmp/kind.sha256sum")"
  install_bin "$tmp/kind" kind
fi

if ! kubectl version --client 2>/dev/null | grep -q "Client Version: $KUBECTL_VERSION\$"; then
  base="https://dl.k8s.io/release/$KUBECTL_VERSION/bin/linux/amd64"
  fetch "$base/kubectl" "$tmp/kubectl"
  fetch "$base/kubectl.sha256" "$tmp/kubectl.sha256"
  verify "$tmp/kubectl" "$(cut -d' ' -f1 "$tmp/kubectl.sha256")"
  install_bin "$tmp/kubectl" kubectl
fi

if ! helm version --short 2>/dev/null | grep -q "^$HELM_VERSION+"; then
  archive="helm-$HELM_VERSION-linux-amd64.tar.gz"
  fetch "https://get.helm.sh/$archive" "$tmp/$archive"
  fetch "https://get.helm.sh/$archive.sha256sum" "$tmp/$archive.sha256sum"
  verify "$tmp/$archive" "$(cut -d' ' -f1 "$tmp/$archive.sha256sum")"
  tar -xzf "$tmp/$archive" -C "$tmp" linux-amd64/helm
  install_bin "$tmp/linux-amd64/helm" helm
fi

log "kind $(kind version | awk '{print $2}'), $(kubectl version --client | head -n 1), helm $(helm version --short)"
