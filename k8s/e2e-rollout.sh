#!/usr/bin/env bash
# Promotion is a rollout, on a cluster: MinIO and an MLflow registry in the cluster, two model versions
# registered, two releases of the chart — cr-registry serving models:/credit-risk/N, cr-storage serving
# version N's s3:// folder — then champion -> 2 and k8s/rollout.sh on both (every replica verified, and
# k8s/smoke.py checks the new model's answers), then champion -> 1 and the same again (rollback).
# Used by .github/workflows/e2e.yml after k8s/e2e.sh; runs against any cluster with the images loaded.
#
#   k8s/e2e-rollout.sh deployment|kserve
#
# Env: NAMESPACE (default), IMAGE_TAG (e2e), V1_DIR (/tmp/credit-risk-model), V2_DIR
#      (/tmp/credit-risk-model-v2) — model folders of make_model.py --version 1 / 2, made when missing —
#      PYTHON (python3, with the train and serve extras), MLFLOW_PORT (15000), MINIO_PORT (19000),
#      PREDICTOR_PORT (18080): local ports of the port-forwards.
set -euo pipefail

MODE="${1:?usage: k8s/e2e-rollout.sh deployment|kserve}"
NAMESPACE="${NAMESPACE:-default}"
IMAGE_TAG="${IMAGE_TAG:-e2e}"
V1_DIR="${V1_DIR:-/tmp/credit-risk-model}"
V2_DIR="${V2_DIR:-/tmp/credit-risk-model-v2}"
PYTHON="${PYTHON:-python3}"
MLFLOW_PORT="${MLFLOW_PORT:-15000}"
MINIO_PORT="${MINIO_PORT:-19000}"
PREDICTOR_PORT="${PREDICTOR_PORT:-18080}"
HERE="$(cd "$(dirname "$0")" && pwd)"
CHART="$HERE/../helm/credit-risk"
MINIO_URL=http://minio.minio.svc.cluster.local:9000
export PYTHON

log() { printf '[e2e-rollout %s] %s\n' "$MODE" "$*" >&2; }
case "$MODE" in deployment|kserve) ;; *) log "mode must be deployment or kserve"; exit 2 ;; esac

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# port_forward NAMESPACE RESOURCE LOCAL:REMOTE URL_TO_POLL: in the background until it answers.
port_forward() {
  local log_file="/tmp/port-forward-${2//\//-}.log"
  kubectl -n "$1" port-forward "$2" "$3" >"$log_file" 2>&1 &
  pids+=("$!")
  for _ in $(seq 60); do
    if "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$4" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  log "port-forward $1 $2 does not answer $4:"; cat "$log_file" >&2; return 1
}

# --- models -------------------------------------------------------------------------------------------
for version in 1 2; do
  dir="$V1_DIR"; seed=7
  if [ "$version" = 2 ]; then dir="$V2_DIR"; seed=11; fi  # another seed: another model, other answers
  if [ ! -s "$dir/expected.json" ]; then
    log "making model version $version in $dir"
    "$PYTHON" "$HERE/make_model.py" --out "$dir" --seed "$seed" --version "$version"
  fi
  got="$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["model_version"])' "$dir/expected.json")"
  [ "$got" = "$version" ] || { log "$dir/expected.json names version $got, expected $version"; exit 1; }
done

# --- MinIO and MLflow ---------------------------------------------------------------------------------
# Random credentials on the first run, the Secret's on a re-run against the same cluster.
secret_value() { kubectl -n minio get secret minio-root -o "jsonpath={.data.$1}" | base64 -d; }
if kubectl -n minio get secret minio-root >/dev/null 2>&1; then
  key_id="$(secret_value MINIO_ROOT_USER)"; secret_key="$(secret_value MINIO_ROOT_PASSWORD)"
else
  key_id="e2e-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(6))')"
  secret_key="$("$PYTHON" -c 'import secrets; print(secrets.token_hex(24))')"
fi
apply_secret() {  # apply_secret NAMESPACE NAME KEY=VALUE...
  local ns="$1" name="$2"; shift 2
  local literals=()
  for pair in "$@"; do literals+=("--from-literal=$pair"); done
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n "$ns" create secret generic "$name" "${literals[@]}" --dry-run=client -o yaml | kubectl apply -f -
}
log "Secrets: minio/minio-root, mlflow/mlflow-s3, $NAMESPACE/model-storage (KServe's format and annotations)"
apply_secret minio minio-root "MINIO_ROOT_USER=$key_id" "MINIO_ROOT_PASSWORD=$secret_key"
apply_secret mlflow mlflow-s3 "AWS_ACCESS_KEY_ID=$key_id" "AWS_SECRET_ACCESS_KEY=$secret_key"
apply_secret "$NAMESPACE" model-storage "AWS_ACCESS_KEY_ID=$key_id" "AWS_SECRET_ACCESS_KEY=$secret_key"
# What KServe's credential builder gives its storage initializer (kserve mode): endpoint, no TLS, region.
kubectl -n "$NAMESPACE" annotate secret model-storage --overwrite \
  serving.kserve.io/s3-endpoint=minio.minio:9000 serving.kserve.io/s3-usehttps=0 \
  serving.kserve.io/s3-verifyssl=0 serving.kserve.io/s3-region=us-east-1

log "MinIO and MLflow"
kubectl apply -f "$HERE/minio.yaml" -f "$HERE/mlflow.yaml"
kubectl -n minio rollout status deployment/minio --timeout=300s
kubectl -n mlflow rollout status deployment/mlflow --timeout=300s
port_forward minio service/minio "$MINIO_PORT:9000" "http://127.0.0.1:$MINIO_PORT/minio/health/ready"
port_forward mlflow service/mlflow "$MLFLOW_PORT:5000" "http://127.0.0.1:$MLFLOW_PORT/health"

# This machine's view of the registry: MLflow and MinIO through the port-forwards.
export MLFLOW_TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT" MLFLOW_S3_ENDPOINT_URL="http://127.0.0.1:$MINIO_PORT"
export AWS_ACCESS_KEY_ID="$key_id" AWS_SECRET_ACCESS_KEY="$secret_key" AWS_DEFAULT_REGION=us-east-1

log "registering version 1 ($V1_DIR) and 2 ($V2_DIR); champion -> 1"
"$PYTHON" "$HERE/register.py" --create-bucket mlflow register "$V1_DIR"
"$PYTHON" "$HERE/register.py" register "$V2_DIR"
"$PYTHON" "$HERE/register.py" alias champion 1
v1_storage="$(PYTHONPATH="$HERE/.." "$PYTHON" -m serving.registry resolve models:/credit-risk/1 \
  | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["storage_uri"] or "")')"
[ -n "$v1_storage" ] || { log "the registry hands out no storage location for version 1"; exit 1; }

# --- the two releases, at version 1 -------------------------------------------------------------------
install() {  # install RELEASE --set ...
  local release="$1"; shift
  local mode_args=()
  if [ "$MODE" = deployment ]; then  # the chart's init container; in kserve mode the Secret's annotations
    mode_args=(--set "model.storage.s3.endpoint=$MINIO_URL" --set model.storage.s3.region=us-east-1)
  fi
  log "helm upgrade --install $release ($*)"
  helm upgrade --install "$release" "$CHART" --namespace "$NAMESPACE" \
    -f "$HERE/values-kind.yaml" -f "$HERE/values-rollout.yaml" --set mode="$MODE" --set image.tag="$IMAGE_TAG" \
    "${mode_args[@]}" "$@" --wait --timeout 10m
  if [ "$MODE" = kserve ]; then  # helm does not wait for an InferenceService
    kubectl -n "$NAMESPACE" wait inferenceservices -l "app.kubernetes.io/instance=$release" \
      --for=condition=Ready --timeout=300s
  fi
}
install cr-registry --set model.uri=models:/credit-risk/1 --set model.storageUri=
install cr-storage --set-string "model.storageUri=$v1_storage" --set model.uri=

# smoke RELEASE EXPECTED_JSON: k8s/smoke.py through the release's Service, once the old pods are gone
# (a port-forward to a Service picks one pod, and may pick one still terminating).
smoke() {
  local service leaving
  leaving="$(kubectl -n "$NAMESPACE" get pods -l "app.kubernetes.io/instance=$1,app.kubernetes.io/component=predictor" \
    -o 'jsonpath={range .items[?(@.metadata.deletionTimestamp)]}pod/{.metadata.name} {end}')"
  if [ -n "$leaving" ]; then
    # shellcheck disable=SC2086  # one word per pod
    kubectl -n "$NAMESPACE" wait --for=delete $leaving --timeout=120s
  fi
  if [ "$MODE" = kserve ]; then
    service="service/$(kubectl -n "$NAMESPACE" get inferenceservices -l "app.kubernetes.io/instance=$1" \
      -o 'jsonpath={.items[0].metadata.name}')-predictor:80"
  else
    service="service/$(kubectl -n "$NAMESPACE" get deployments \
      -l "app.kubernetes.io/instance=$1,app.kubernetes.io/component=predictor" -o 'jsonpath={.items[0].metadata.name}'):8080"
  fi
  port_forward "$NAMESPACE" "${service%:*}" "$PREDICTOR_PORT:${service##*:}" "http://127.0.0.1:$PREDICTOR_PORT/v2/health/live"
  "$PYTHON" "$HERE/smoke.py" --url "http://127.0.0.1:$PREDICTOR_PORT" --expected "$2" --wait 60
  kill "${pids[-1]}" 2>/dev/null || true
  wait "${pids[-1]}" 2>/dev/null || true
}

# rollout VERSION_DIR: k8s/rollout.sh on both releases, then their answers checked against the model's.
rollout() {
  "$HERE/rollout.sh" --release cr-registry --namespace "$NAMESPACE" --source registry --timeout 300s
  smoke cr-registry "$1/expected.json"
  "$HERE/rollout.sh" --release cr-storage --namespace "$NAMESPACE" --source storage --timeout 300s
  smoke cr-storage "$1/expected.json"
}

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  printf '\n### Promotion is a rollout (%s mode)\n\nchampion 1 (install), then 2 (promote), then 1 (rollback):\n' \
    "$MODE" >>"$GITHUB_STEP_SUMMARY"
fi
log "installed at version 1: every replica checked (rollout.sh finds nothing to change)"
rollout "$V1_DIR"

log "promote: champion -> 2"
"$PYTHON" "$HERE/register.py" alias champion 2
rollout "$V2_DIR"

log "rollback: champion -> 1"
"$PYTHON" "$HERE/register.py" alias champion 1
rollout "$V1_DIR"

helm history cr-registry --namespace "$NAMESPACE"
helm history cr-storage --namespace "$NAMESPACE"
log "passed"
