#!/usr/bin/env bash
# Everything worth reading when an e2e step failed: objects, events, descriptions and logs of the
# release namespace (and KServe's / cert-manager's / the rollout flow's MinIO and MLflow when present).
# Never fails itself; prints no Secret's data.
#
#   k8s/dump.sh [NAMESPACE ...]       # default: default kserve cert-manager minio mlflow
set +e
namespaces=("$@")
[ ${#namespaces[@]} -gt 0 ] || namespaces=(default kserve cert-manager minio mlflow)

section() { printf '\n===== %s =====\n' "$*"; }

section "nodes"
kubectl get nodes -o wide
kubectl describe nodes | sed -n '/Allocated resources/,/Events/p'
section "helm releases"
helm list --all-namespaces --all
# Every revision: which model each rollout set, and which one failed.
helm list --all-namespaces --all --output json 2>/dev/null \
  | python3 -c 'import json, sys; [print(r["name"], r["namespace"]) for r in json.load(sys.stdin)]' \
  | while read -r release ns; do
      section "helm history $ns/$release"
      helm history "$release" --namespace "$ns"
    done
for ns in "${namespaces[@]}"; do
  kubectl get namespace "$ns" >/dev/null 2>&1 || continue
  section "$ns: objects"
  kubectl -n "$ns" get all,networkpolicies,poddisruptionbudgets,configmaps,serviceaccounts -o wide
  kubectl -n "$ns" get inferenceservices -o wide 2>/dev/null
  section "$ns: events (oldest first)"
  kubectl -n "$ns" get events --sort-by=.lastTimestamp
  section "$ns: inferenceservices"
  kubectl -n "$ns" describe inferenceservices 2>/dev/null
  for pod in $(kubectl -n "$ns" get pods -o name); do
    section "$ns: describe $pod"
    kubectl -n "$ns" describe "$pod"
    section "$ns: logs $pod"
    kubectl -n "$ns" logs "$pod" --all-containers --tail=300
    kubectl -n "$ns" logs "$pod" --all-containers --previous --tail=100 2>/dev/null \
      && echo "(previous container above)"
  done
done
exit 0
