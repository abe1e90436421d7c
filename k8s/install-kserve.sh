#!/usr/bin/env bash
# Install cert-manager and KServe in Standard (raw Kubernetes) mode into the current kube context,
# the way KServe's own quick install and release e2e do: cert-manager first (KServe's webhooks need
# its certificates), then the kserve-crd and kserve-resources charts from KServe's OCI registry.
# No Knative, no Istio: KServe makes plain Deployments, Services and HPAs, and creates no Ingress
# (the e2e reaches the predictor through its <name>-predictor Service).
#
#   k8s/install-kserve.sh         # needs kubectl and helm >= 3.8 (OCI); ~2-4 minutes on a kind cluster
set -euo pipefail

CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.17.0}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.20.0}"
KSERVE_NAMESPACE="${KSERVE_NAMESPACE:-kserve}"

log() { printf '[install-kserve] %s\n' "$*" >&2; }

log "cert-manager $CERT_MANAGER_VERSION"
kubectl apply --server-side -f \
  "https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
# cert-manager, its cainjector and its webhook (KServe's Certificate goes through the webhook).
kubectl -n cert-manager wait deployment --all --for=condition=Available --timeout=300s

log "KServe CRDs $KSERVE_VERSION"
helm upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd \
  --version "$KSERVE_VERSION" --namespace "$KSERVE_NAMESPACE" --create-namespace --wait

log "KServe controller $KSERVE_VERSION (Standard mode, no ingress creation)"
for attempt in 1 2 3; do
  # cert-manager's webhook can still refuse the Certificate for a few seconds after it reports Available.
  if helm upgrade --install kserve oci://ghcr.io/kserve/charts/kserve-resources \
      --version "$KSERVE_VERSION" --namespace "$KSERVE_NAMESPACE" --create-namespace \
      --set kserve.controller.deploymentMode=Standard \
      --set kserve.controller.gateway.disableIngressCreation=true \
      --wait --timeout 10m; then
    break
  fi
  [ "$attempt" = 3 ] && { log "KServe install failed 3 times"; exit 1; }
  log "attempt $attempt failed; retrying in 20 s"
  sleep 20
done
kubectl -n "$KSERVE_NAMESPACE" rollout status deployment/kserve-controller-manager --timeout=300s
log "KServe $KSERVE_VERSION ready:"
kubectl -n "$KSERVE_NAMESPACE" get pods >&2
