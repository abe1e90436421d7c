#!/usr/bin/env bash
# Promotion is a rollout: resolve an MLflow alias once into an immutable version, helm upgrade the release
# with it, wait for Kubernetes to roll every replica over, and check that each Ready pod answers that version.
# Rollback is the same command after moving the alias back.
#
#   k8s/rollout.sh [--release credit-risk] [--namespace default] [--source registry|storage]
#                  [--timeout 300s] [--chart helm/credit-risk] [--dry-run] [MODEL_URI]
#
# MODEL_URI defaults to models:/credit-risk@champion. --source registry sets model.uri=models:/NAME/N (the
# predictor downloads through MLflow); --source storage sets model.storageUri to that version's artifact
# location (s3://…: KServe's storage initializer or the chart's init container fetch it). The other one is
# set to "". The release keeps its other values (helm --reset-then-reuse-values: the chart's current
# defaults, then the release's own values, then these two).
#
# Env: MLFLOW_TRACKING_URI (required; the registry as this machine reaches it, e.g. a port-forward),
#      PYTHON (python3; needs the serve extra: pip install -e '.[serve]'), KUBECTL (kubectl), HELM (helm),
#      EXTRA_HELM_ARGS (appended to helm upgrade), GITHUB_STEP_SUMMARY (a markdown row is appended).
# Prints one line on success; exits 1 with a message on any failure, 2 on a usage error.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
RELEASE=credit-risk
NAMESPACE=default
SOURCE=registry
TIMEOUT=300s
CHART="$ROOT/helm/credit-risk"
MODEL_URI="models:/credit-risk@champion"
DRY_RUN=false
uri_given=false
PYTHON="${PYTHON:-python3}"
KUBECTL="${KUBECTL:-kubectl}"
HELM="${HELM:-helm}"
export KUBECTL

usage() {
  cat <<'EOF'
usage: k8s/rollout.sh [--release NAME] [--namespace NS] [--source registry|storage] [--timeout 300s]
                      [--chart PATH] [--dry-run] [MODEL_URI]

Resolve MODEL_URI (default models:/credit-risk@champion) through $MLFLOW_TRACKING_URI into version N,
helm upgrade the release to serve exactly N, wait for the rollout and check every Ready pod answers N.

  --release NAME      helm release (default credit-risk)
  --namespace NS      its namespace (default default)
  --source registry   set model.uri=models:/NAME/N (default)
  --source storage    set model.storageUri=<version N's artifact location> (s3://, gs://, https://)
  --timeout 300s      for helm upgrade and each wait (s, m or h)
  --chart PATH        the chart (default: helm/credit-risk of this checkout)
  --dry-run           resolve and print the helm command; touch no cluster
EOF
}

log() { printf 'rollout: %s\n' "$*" >&2; }
die() { printf 'rollout: error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'rollout: %s (see --help)\n' "$*" >&2; exit 2; }
need_value() { [ "$2" -ge 2 ] || usage_error "$1 needs a value"; }

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --release) need_value "$1" $#; RELEASE="$2"; shift 2 ;;
    --namespace|-n) need_value "$1" $#; NAMESPACE="$2"; shift 2 ;;
    --source) need_value "$1" $#; SOURCE="$2"; shift 2 ;;
    --timeout) need_value "$1" $#; TIMEOUT="$2"; shift 2 ;;
    --chart) need_value "$1" $#; CHART="$2"; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    --release=*|--namespace=*|--source=*|--timeout=*|--chart=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
    -*) usage_error "unknown option $1" ;;
    *) [ "$uri_given" = false ] || usage_error "one MODEL_URI only (got $MODEL_URI and $1)"
       MODEL_URI="$1"; uri_given=true; shift ;;
  esac
done
case "$SOURCE" in registry|storage) ;; *) usage_error "--source must be registry or storage, not '$SOURCE'" ;; esac
[[ "$TIMEOUT" =~ ^([0-9]+)([smh]?)$ ]] || usage_error "--timeout must look like 300s, 5m or 1h, not '$TIMEOUT'"
case "${BASH_REMATCH[2]}" in
  m) TIMEOUT_S=$((BASH_REMATCH[1] * 60)) ;; h) TIMEOUT_S=$((BASH_REMATCH[1] * 3600)) ;; *) TIMEOUT_S=${BASH_REMATCH[1]} ;;
esac
TIMEOUT="${TIMEOUT_S}s"
[ -n "${MLFLOW_TRACKING_URI:-}" ] || die "MLFLOW_TRACKING_URI is not set: point it at the registry, e.g.
  kubectl -n mlflow port-forward service/mlflow 5000:5000 &
  export MLFLOW_TRACKING_URI=http://127.0.0.1:5000"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. Resolve once: from here on only the immutable version counts, wherever the alias moves meanwhile.
log "resolving $MODEL_URI through $MLFLOW_TRACKING_URI"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m serving.registry resolve "$MODEL_URI" >"$work/resolved.json" \
  || die "cannot resolve $MODEL_URI (above: what MLflow said)"

# 2. The plan: what to set and, from the release's values, how to find and check its pods.
plan_version="" plan_model_uri="" plan_target="" plan_set_uri="" plan_set_storage_uri="" plan_mode=""
plan_container="" plan_model_name="" plan_http_port="" plan_previous="" plan_unchanged=""
read_plan() {  # read_plan [--values FILE]: sets the plan_* variables
  local out key value
  out="$("$PYTHON" "$HERE/rollout.py" plan --source "$SOURCE" "$@" <"$work/resolved.json")" || exit 1
  while IFS='=' read -r key value; do
    case "$key" in
      version|model_uri|target|set_uri|set_storage_uri|mode|container|model_name|http_port|previous|unchanged)
        printf -v "plan_$key" '%s' "$value" ;;
    esac
  done <<<"$out"
}
read_plan
helm_args=(upgrade "$RELEASE" "$CHART" --namespace "$NAMESPACE" --reset-then-reuse-values
  --set-string "model.uri=${plan_set_uri//,/\\,}" --set-string "model.storageUri=${plan_set_storage_uri//,/\\,}"
  --wait --timeout "$TIMEOUT")
if [ -n "${EXTRA_HELM_ARGS:-}" ]; then
  read -r -a extra <<<"$EXTRA_HELM_ARGS"
  helm_args+=("${extra[@]}")
fi
if [ "$DRY_RUN" = true ]; then
  log "$MODEL_URI is version $plan_version; would run:"
  printf '%q ' "$HELM" "${helm_args[@]}"
  printf '\n'
  exit 0
fi

started="${EPOCHREALTIME:-$SECONDS}"
"$HELM" get values "$RELEASE" --namespace "$NAMESPACE" --all --output json >"$work/values.json" \
  || die "no release $RELEASE in namespace $NAMESPACE: install it first (helm install $RELEASE $CHART ...)"
read_plan --values "$work/values.json"

# 3. The Deployment that rolls: the chart's own (mode=deployment) or the one KServe makes for the
#    InferenceService (<isvc>-predictor), found by the release's labels whatever the chart's fullname.
one_name() {  # one_name KIND SELECTOR
  local names names_list
  names="$("$KUBECTL" --namespace "$NAMESPACE" get "$1" --selector "$2" --output 'jsonpath={.items[*].metadata.name}')" \
    || die "kubectl get $1 failed"
  read -r -a names_list <<<"$names"
  [ "${#names_list[@]}" -eq 1 ] || die "expected one $1 of release $RELEASE (selector $2), found ${#names_list[@]}: $names"
  printf '%s' "${names_list[0]}"
}
if [ "$plan_mode" = kserve ]; then
  isvc="$(one_name inferenceservices "app.kubernetes.io/instance=$RELEASE")"
  deployment="$isvc-predictor"
else
  deployment="$(one_name deployments "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=predictor")"
fi

# 4. The upgrade (none when the release already serves that version: then this only verifies).
if [ "$plan_unchanged" = yes ]; then
  log "$RELEASE already serves $plan_target (version $plan_version): verifying only"
else
  log "$RELEASE: ${plan_previous:-nothing} -> $plan_target (version $plan_version, $plan_mode mode)"
  "$HELM" "${helm_args[@]}" || die "helm upgrade $RELEASE failed (helm history $RELEASE -n $NAMESPACE; helm rollback $RELEASE)"
fi
"$PYTHON" "$HERE/rollout.py" wait-template --namespace "$NAMESPACE" --deployment "$deployment" \
  --value "$plan_target" --timeout "$TIMEOUT_S" || exit 1
"$KUBECTL" --namespace "$NAMESPACE" rollout status "deployment/$deployment" --timeout "$TIMEOUT" \
  || die "deployment/$deployment did not finish rolling out in $TIMEOUT (kubectl -n $NAMESPACE describe deployment/$deployment)"
if [ "$plan_mode" = kserve ]; then
  "$KUBECTL" --namespace "$NAMESPACE" wait "inferenceservice/$isvc" --for condition=Ready --timeout "$TIMEOUT" \
    || die "inferenceservice/$isvc is not Ready after $TIMEOUT"
fi

# 5. Every Ready pod answers the version, asked inside each pod.
replicas="$("$PYTHON" "$HERE/rollout.py" verify --namespace "$NAMESPACE" --deployment "$deployment" \
  --container "$plan_container" --model-name "$plan_model_name" --port "$plan_http_port" \
  --version "$plan_version")" || exit 1
seconds="$(awk -v a="$started" -v b="${EPOCHREALTIME:-$SECONDS}" 'BEGIN { printf "%.1f", b - a }')"

echo "rolled out $RELEASE to version $plan_version ($plan_model_uri) in $seconds s, $replicas replicas verified"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  header=true  # a table row right above: append to that table
  if [ -s "$GITHUB_STEP_SUMMARY" ] && tail -n 1 "$GITHUB_STEP_SUMMARY" | grep -q '^|'; then header=false; fi
  if [ "$header" = true ]; then
    printf '\n| release | mode | source | from | to | version | seconds | replicas verified |\n| --- | --- | --- | --- | --- | --- | ---: | --- |\n' \
      >>"$GITHUB_STEP_SUMMARY"
  fi
  # shellcheck disable=SC2016  # the backquotes are markdown
  printf '| %s | %s | %s | `%s` | `%s` | %s | %s | %s |\n' "$RELEASE" "$plan_mode" "$SOURCE" \
    "${plan_previous:-none}" "$plan_target" "$plan_version" "$seconds" "$replicas" >>"$GITHUB_STEP_SUMMARY"
fi
