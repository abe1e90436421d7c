#!/usr/bin/env bash
# Install the chart into the current kube context with the transformer in front of the predictor and the
# chart's demo Redis as its feature store (k8s/values-transformer.yaml), wait for all three, smoke-test the
# predictor (k8s/smoke.py) and the transformer (k8s/smoke_transformer.py: /score, V2 raw tensors with the
# requested output `features`, 401 on ingestion without a token) through port-forwards, replay a synthetic
# stream score-then-ingest and require the online features to equal the offline ones (python -m
# harness.parity), check the NetworkPolicies from probe pods (k8s/netpol_probe.py), then `helm test`.
# Used by .github/workflows/e2e.yml; runs against any cluster that has the image and the model (see
# k8s/kind-config.yaml) and can pull the Redis image.
#
#   k8s/e2e.sh deployment|kserve [EXPECTED_JSON]
#
# Env: RELEASE (credit-risk), NAMESPACE (default), IMAGE_TAG (e2e), LOCAL_PORT (8080), TRANSFORMER_PORT
#      (18080), INGEST_PORT (18082), PYTHON (python3: needs the repository's train extra for the parity
#      replay), PARITY_ROWS (300), EXTRA_HELM_ARGS (appended to helm upgrade --install).
set -euo pipefail

MODE="${1:?usage: k8s/e2e.sh deployment|kserve [EXPECTED_JSON]}"
EXPECTED="${2:-/tmp/credit-risk-model/expected.json}"
RELEASE="${RELEASE:-credit-risk}"
NAMESPACE="${NAMESPACE:-default}"
IMAGE_TAG="${IMAGE_TAG:-e2e}"
LOCAL_PORT="${LOCAL_PORT:-8080}"
TRANSFORMER_PORT="${TRANSFORMER_PORT:-18080}"
INGEST_PORT="${INGEST_PORT:-18082}"
PYTHON="${PYTHON:-python3}"
PARITY_ROWS="${PARITY_ROWS:-300}"
HERE="$(cd "$(dirname "$0")" && pwd)"
CHART="$HERE/../helm/credit-risk"

log() { printf '[e2e %s] %s\n' "$MODE" "$*" >&2; }
case "$MODE" in deployment|kserve) ;; *) log "mode must be deployment or kserve"; exit 2 ;; esac
[ -s "$EXPECTED" ] || { log "missing $EXPECTED (run python k8s/make_model.py --out DIR first)"; exit 2; }

# The ingestion token: random per run, in the Secret the values name (never in the release's values), and
# in a file for the smoke test and the parity replay.
TOKEN_FILE="$(mktemp)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -f "$TOKEN_FILE"
}
trap cleanup EXIT
"$PYTHON" -c 'import secrets, sys; sys.stdout.write(secrets.token_urlsafe(32))' >"$TOKEN_FILE"
kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$NAMESPACE"
kubectl -n "$NAMESPACE" create secret generic credit-risk-ingest --from-file=token="$TOKEN_FILE" \
  --dry-run=client -o yaml | kubectl apply -f -

log "helm upgrade --install $RELEASE (mode=$MODE, image tag $IMAGE_TAG, transformer + Redis)"
# shellcheck disable=SC2086
helm upgrade --install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --create-namespace \
  -f "$HERE/values-kind.yaml" -f "$HERE/values-transformer.yaml" --set mode="$MODE" --set image.tag="$IMAGE_TAG" \
  --wait --timeout 8m ${EXTRA_HELM_ARGS:-}

# The chart's full name: the release name when it contains the chart name (as here).
NAME="$RELEASE"
if [ "$MODE" = deployment ]; then
  kubectl -n "$NAMESPACE" rollout status "deployment/$NAME" --timeout=300s
  SERVICE="service/$NAME"; SERVICE_PORT=8080
  PREDICTOR_ADDRESS="$NAME:8080"; TRANSFORMER_HTTP=8080
else
  kubectl -n "$NAMESPACE" wait "inferenceservice/$NAME" --for=condition=Ready --timeout=300s
  kubectl -n "$NAMESPACE" get inferenceservice "$NAME" -o wide
  kubectl -n "$NAMESPACE" rollout status "deployment/$NAME-predictor" --timeout=300s
  SERVICE="service/$NAME-predictor"; SERVICE_PORT=80
  # KServe's <name>-transformer Service: port 80 -> the HTTP port, the ingest port keeps its number.
  PREDICTOR_ADDRESS="$NAME-predictor:80"; TRANSFORMER_HTTP=80
fi
kubectl -n "$NAMESPACE" rollout status "deployment/$NAME-transformer" --timeout=300s
kubectl -n "$NAMESPACE" rollout status "statefulset/$NAME-redis" --timeout=300s
kubectl -n "$NAMESPACE" get pods,services,networkpolicies,pvc -o wide

log "port-forward $SERVICE $LOCAL_PORT:$SERVICE_PORT"
kubectl -n "$NAMESPACE" port-forward "$SERVICE" "$LOCAL_PORT:$SERVICE_PORT" >/tmp/port-forward.log 2>&1 &
PIDS+=("$!")

log "smoke test of the predictor"
python3 "$HERE/smoke.py" --url "http://127.0.0.1:$LOCAL_PORT" --expected "$EXPECTED" --wait 60

log "port-forward service/$NAME-transformer $TRANSFORMER_PORT:$TRANSFORMER_HTTP $INGEST_PORT:8082"
kubectl -n "$NAMESPACE" port-forward "service/$NAME-transformer" "$TRANSFORMER_PORT:$TRANSFORMER_HTTP" \
  "$INGEST_PORT:8082" >/tmp/port-forward-transformer.log 2>&1 &
PIDS+=("$!")
TRANSFORMER_URL="http://127.0.0.1:$TRANSFORMER_PORT"
INGEST_URL="http://127.0.0.1:$INGEST_PORT"

log "smoke test of the transformer (/score, V2 raw tensors and features, ingestion and its token)"
python3 "$HERE/smoke_transformer.py" --url "$TRANSFORMER_URL" --ingest-url "$INGEST_URL" \
  --token-file "$TOKEN_FILE" --wait 120

log "online/offline feature parity: $PARITY_ROWS synthetic transactions scored then ingested in time order"
(cd "$HERE/.." && "$PYTHON" -m harness.parity --score-url "$TRANSFORMER_URL" \
  --ingest-url "$INGEST_URL" --token-file "$TOKEN_FILE" --rows "$PARITY_ROWS" --seed 0)

# Who may open what, from inside the cluster (port-forwards bypass NetworkPolicy): any pod of the namespace
# may score through the transformer, only a producer reaches its ingest port, nobody but the transformer
# reaches the predictor or Redis. kindnet enforces NetworkPolicy.
probe() {
  local name="$1" labels="$2"; shift 2
  log "NetworkPolicy probe $name ($labels): $*"
  kubectl -n "$NAMESPACE" delete pod "$name" --ignore-not-found --wait=true >/dev/null
  kubectl -n "$NAMESPACE" run "$name" --image="credit-risk-predictor:$IMAGE_TAG" --image-pull-policy=Never \
    --restart=Never --labels="$labels" --command -- python -c "$(cat "$HERE/netpol_probe.py")" "$@" >/dev/null
  local phase=""
  for _ in $(seq 1 60); do
    phase="$(kubectl -n "$NAMESPACE" get pod "$name" -o jsonpath='{.status.phase}')"
    case "$phase" in Succeeded|Failed) break ;; esac
    sleep 2
  done
  kubectl -n "$NAMESPACE" logs "$name"
  kubectl -n "$NAMESPACE" delete pod "$name" --wait=false >/dev/null
  [ "$phase" = Succeeded ] || { log "probe $name: $phase (above: what it could open)"; exit 1; }
}
TRANSFORMER_ADDRESS="$NAME-transformer:$TRANSFORMER_HTTP"
probe np-outsider app=np-outsider "$TRANSFORMER_ADDRESS=open" "$NAME-transformer:8082=blocked" \
  "$PREDICTOR_ADDRESS=blocked" "$NAME-redis:6379=blocked"
probe np-producer credit-risk.batibank.io/producer=true "$TRANSFORMER_ADDRESS=open" \
  "$NAME-transformer:8082=open" "$PREDICTOR_ADDRESS=blocked" "$NAME-redis:6379=blocked"

log "helm test"
helm test "$RELEASE" --namespace "$NAMESPACE" --logs --timeout 5m

log "passed"
