#!/usr/bin/env bash
# Install the chart into the current kube context, wait for the predictor, smoke-test it through a
# port-forward, then run `helm test`. Used by .github/workflows/e2e.yml; runs against any cluster that
# has the image and the model (see k8s/kind-config.yaml).
#
#   k8s/e2e.sh deployment|kserve [EXPECTED_JSON]
#
# Env: RELEASE (credit-risk), NAMESPACE (default), IMAGE_TAG (e2e), LOCAL_PORT (8080),
#      EXTRA_HELM_ARGS (appended to helm upgrade --install).
set -euo pipefail

MODE="${1:?usage: k8s/e2e.sh deployment|kserve [EXPECTED_JSON]}"
EXPECTED="${2:-/tmp/credit-risk-model/expected.json}"
RELEASE="${RELEASE:-credit-risk}"
NAMESPACE="${NAMESPACE:-default}"
IMAGE_TAG="${IMAGE_TAG:-e2e}"
LOCAL_PORT="${LOCAL_PORT:-8080}"
HERE="$(cd "$(dirname "$0")" && pwd)"
CHART="$HERE/../helm/credit-risk"

log() { printf '[e2e %s] %s\n' "$MODE" "$*" >&2; }
case "$MODE" in deployment|kserve) ;; *) log "mode must be deployment or kserve"; exit 2 ;; esac
[ -s "$EXPECTED" ] || { log "missing $EXPECTED (run python k8s/make_model.py --out DIR first)"; exit 2; }

log "helm upgrade --install $RELEASE (mode=$MODE, image tag $IMAGE_TAG)"
# shellcheck disable=SC2086
helm upgrade --install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --create-namespace \
  -f "$HERE/values-kind.yaml" --set mode="$MODE" --set image.tag="$IMAGE_TAG" \
  --wait --timeout 5m ${EXTRA_HELM_ARGS:-}

# The chart's full name: the release name when it contains the chart name (as here).
NAME="$RELEASE"
if [ "$MODE" = deployment ]; then
  kubectl -n "$NAMESPACE" rollout status "deployment/$NAME" --timeout=300s
  SERVICE="service/$NAME"; SERVICE_PORT=8080
else
  kubectl -n "$NAMESPACE" wait "inferenceservice/$NAME" --for=condition=Ready --timeout=300s
  kubectl -n "$NAMESPACE" get inferenceservice "$NAME" -o wide
  kubectl -n "$NAMESPACE" rollout status "deployment/$NAME-predictor" --timeout=300s
  SERVICE="service/$NAME-predictor"; SERVICE_PORT=80
fi
kubectl -n "$NAMESPACE" get pods,services -o wide

log "port-forward $SERVICE $LOCAL_PORT:$SERVICE_PORT"
kubectl -n "$NAMESPACE" port-forward "$SERVICE" "$LOCAL_PORT:$SERVICE_PORT" >/tmp/port-forward.log 2>&1 &
PF_PID=$!
trap 'kill "$PF_PID" 2>/dev/null || true' EXIT

log "smoke test"
python3 "$HERE/smoke.py" --url "http://127.0.0.1:$LOCAL_PORT" --expected "$EXPECTED" --wait 60

log "helm test"
helm test "$RELEASE" --namespace "$NAMESPACE" --logs --timeout 5m

log "passed"
