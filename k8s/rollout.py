"""The decisions of ``k8s/rollout.sh``, in Python so they are tested without a cluster (standard library only).

    python k8s/rollout.py plan --source registry|storage [--values VALUES.json] < RESOLVED.json
    python k8s/rollout.py wait-template --namespace NS --deployment NAME --value SOURCE [--timeout 300]
    python k8s/rollout.py verify --namespace NS --deployment NAME --container C --model-name M \\
        --port 8080 --version N [--settle 60]

* ``plan``: from what ``python -m serving.registry resolve`` printed (stdin) and, optionally, the release's
  ``helm get values --all -o json``, the chart values to set and how to watch the release; ``key=value``
  lines on stdout. Refuses, with the fix, a storage rollout from a registry that proxies its artifacts
  (``storage_uri`` null), a release whose model is a volume, and KServe's Knative mode.
* ``wait-template``: polls the Deployment until its controller has seen the newest spec and the pod
  template serves SOURCE (the chart's ``credit-risk.batibank.io/model-source`` annotation, a container
  argument or an env value such as KServe's ``STORAGE_URI``). In kserve mode the KServe controller writes the
  Deployment after ``helm upgrade`` returns; ``kubectl rollout status`` before that would watch the old one.
* ``verify``: every Ready, non-terminating pod of the Deployment answers ``GET /v2/models/NAME`` with
  version N (asked inside the pod: ``kubectl exec POD -c C -- python -c PROBE URL``), and the Ready pods of
  the current ReplicaSet are as many as the Deployment wants. Pods of older ReplicaSets still running after
  ``--settle`` seconds are asked too: one answering another version fails the rollout. Prints ``R/D``.

Exit status: 0 done, 1 failed (one ``rollout: …`` line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SOURCE_ANNOTATION = "credit-risk.batibank.io/model-source"
REVISION = "deployment.kubernetes.io/revision"
CONTAINER = {"deployment": "predictor", "kserve": "kserve-container"}
#: Run by ``python -c`` inside the predictor container (its image has no curl): the version it serves.
PROBE = (
    "import json,sys,urllib.request as u;print(json.load(u.urlopen(sys.argv[1],timeout=10))['versions'][0])"
)


class RolloutError(Exception):
    """What went wrong, in one line that says what to do."""


# ------------------------------------------------------------------------------------------ plan


def plan(resolved: dict, source: str, values: dict | None = None) -> dict[str, str]:
    """What to set for a rollout of ``resolved`` (serving.registry's JSON) from ``source``, and, given the
    release's values, how to find and check its pods."""
    version, model_uri = str(resolved["version"]), resolved["model_uri"]
    if source == "registry":
        target, sets = model_uri, {"model.uri": model_uri, "model.storageUri": ""}
    elif source == "storage":
        target = resolved.get("storage_uri")
        if not target:
            raise RolloutError(
                f"{model_uri} has no storage location a storage initializer can read: the tracking server "
                "proxies its artifacts (mlflow-artifacts:/). Use --source registry (the predictor downloads "
                "through MLflow), or run the server with --default-artifact-root s3://… --no-serve-artifacts"
            )
        sets = {"model.storageUri": target, "model.uri": ""}
    else:
        raise RolloutError(f"--source must be registry or storage, not {source!r}")
    out = {"version": version, "model_uri": model_uri, "target": target,
           "set_uri": sets["model.uri"], "set_storage_uri": sets["model.storageUri"]}  # fmt: skip
    if values is None:
        return out
    mode = values.get("mode")
    if mode not in CONTAINER:
        raise RolloutError(f"the release's mode is {mode!r}: expected deployment or kserve")
    kserve = values.get("kserve") or {}
    if mode == "kserve" and kserve.get("deploymentMode") in ("Knative", "Serverless"):
        raise RolloutError(
            "the release runs in KServe's Knative mode: Knative rolls revisions, not a Deployment; "
            "rollout.sh supports kserve.deploymentMode Standard (RawDeployment) and mode=deployment"
        )
    model = values.get("model") or {}
    if (model.get("volume") or {}).get("type", "none") != "none":
        raise RolloutError(
            f"the release serves model.volume ({model['volume']['type']}), not a registry version: reinstall "
            "it with model.volume.type=none and model.uri=models:/NAME/N (or model.storageUri) first"
        )
    current = model.get("uri") or model.get("storageUri") or ""
    serving = {"model.uri": model.get("uri") or "", "model.storageUri": model.get("storageUri") or ""}
    unchanged = serving == sets
    return out | {
        "mode": mode,
        "container": CONTAINER[mode],
        "model_name": str(model.get("name") or "credit-risk"),
        "http_port": str((values.get("server") or {}).get("httpPort", 8080)),
        "previous": current,
        "unchanged": "yes" if unchanged else "no",
    }


# ------------------------------------------------------------------------------------------ template


def template_pending(deployment: dict, target: str) -> str | None:
    """Why the Deployment is not yet the one serving ``target`` (None once it is)."""
    meta, status = deployment.get("metadata", {}), deployment.get("status", {})
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return f"its controller has not seen generation {meta.get('generation')} yet"
    template = deployment["spec"]["template"]
    if (template.get("metadata", {}).get("annotations") or {}).get(SOURCE_ANNOTATION) == target:
        return None
    for container in template["spec"].get("containers", []):
        if target in container.get("args", []) or target in container.get("command", []):
            return None
        if any(env.get("value") == target for env in container.get("env", [])):
            return None
    return f"its pod template does not serve {target} yet"


# ------------------------------------------------------------------------------------------ pods


def _ready(pod: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def _owner_uids(obj: dict, kind: str) -> set[str]:
    return {o["uid"] for o in obj.get("metadata", {}).get("ownerReferences", []) if o.get("kind") == kind}


@dataclass
class Pods:
    """The Deployment's pods, as a rollout check sees them."""

    desired: int
    current: list[str] = field(default_factory=list)  # Ready, not terminating, of the current ReplicaSet
    current_not_ready: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # not terminating, of an older ReplicaSet (or none)
    stale_ready: list[str] = field(default_factory=list)
    terminating: list[str] = field(default_factory=list)


def classify(deployment: dict, replicasets: list[dict], pods: list[dict]) -> Pods:
    """Sort ``pods`` (``kubectl get pods -o json`` items matching the Deployment's selector) by ReplicaSet:
    the current one is the ReplicaSet of the Deployment whose revision is the Deployment's."""
    uid, name = deployment["metadata"]["uid"], deployment["metadata"]["name"]
    revision = (deployment["metadata"].get("annotations") or {}).get(REVISION)
    owned = [rs for rs in replicasets if uid in _owner_uids(rs, "Deployment")]
    current = [rs for rs in owned if (rs["metadata"].get("annotations") or {}).get(REVISION) == revision]
    if revision is None or len(current) != 1:
        raise RolloutError(
            f"deployment/{name} (revision {revision}) has {len(current)} ReplicaSets of that revision among "
            f"{len(owned)}: cannot tell which pods are the new ones"
        )
    current_uid = current[0]["metadata"]["uid"]
    result = Pods(desired=int(deployment["spec"].get("replicas", 1)))
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        pod_name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp") or pod.get("status", {}).get("phase") in (
            "Succeeded",
            "Failed",
        ):
            result.terminating.append(pod_name)
        elif current_uid in _owner_uids(pod, "ReplicaSet"):
            (result.current if _ready(pod) else result.current_not_ready).append(pod_name)
        else:
            result.stale.append(pod_name)
            if _ready(pod):
                result.stale_ready.append(pod_name)
    return result


def judge(pods: Pods, answers: dict[str, str], version: str) -> list[str]:
    """Everything wrong with a rollout to ``version``; ``answers`` maps each asked pod to what it said."""
    problems = [
        f"pod {name} answers version {answers.get(name)!r}, not {version}"
        for name in pods.current + pods.stale_ready
        if answers.get(name) != version
    ]
    verified = sum(answers.get(name) == version for name in pods.current)
    if verified != pods.desired:
        problems.append(
            f"{verified} of {pods.desired} wanted replicas are Ready on the current ReplicaSet and answer "
            f"version {version}"
            + (f" (not Ready: {', '.join(pods.current_not_ready)})" if pods.current_not_ready else "")
        )
    return problems


def probe_command(kubectl: str, namespace: str, pod: str, container: str, url: str) -> list[str]:
    return [kubectl, "--namespace", namespace, "exec", pod, "--container", container, "--",
            "python", "-c", PROBE, url]  # fmt: skip


# ------------------------------------------------------------------------------------------ kubectl


def kubectl_json(kubectl: str, namespace: str, *args: str) -> dict:
    result = subprocess.run([kubectl, "--namespace", namespace, "get", *args, "--output", "json"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    if result.returncode != 0:
        raise RolloutError(f"kubectl get {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout)


def selector(deployment: dict) -> str:
    labels = deployment["spec"]["selector"].get("matchLabels") or {}
    if not labels:
        raise RolloutError(f"deployment/{deployment['metadata']['name']} has no matchLabels selector")
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def observe(kubectl: str, namespace: str, name: str) -> tuple[dict, Pods]:
    deployment = kubectl_json(kubectl, namespace, f"deployment/{name}")
    labels = selector(deployment)
    replicasets = kubectl_json(kubectl, namespace, "replicasets", "--selector", labels)["items"]
    pods = kubectl_json(kubectl, namespace, "pods", "--selector", labels)["items"]
    return deployment, classify(deployment, replicasets, pods)


def ask(command: Callable[[str], list[str]]) -> Callable[[str], str]:
    """``answer(pod)``: run ``command(pod)`` (``probe_command``: PROBE inside the pod) and return what it
    printed, or ``no answer: …``."""

    def answer(pod: str) -> str:
        try:
            result = subprocess.run(command(pod), capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"no answer: {exc}"
        if result.returncode != 0:
            tail = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
            return f"no answer: {tail[-1]}"
        return result.stdout.strip()

    return answer


def verify(pods: Pods, answer: Callable[[str], str], version: str) -> tuple[int, list[str]]:
    """Ask every pod that takes traffic; returns the verified count and the problems."""
    answers = {name: answer(name) for name in pods.current + pods.stale_ready}
    for name, said in answers.items():
        role = "current" if name in pods.current else "OLDER ReplicaSet"
        print(f"rollout: pod {name} ({role}): version {said}", file=sys.stderr)
    return sum(answers[n] == version for n in pods.current), judge(pods, answers, version)


# ------------------------------------------------------------------------------------------ CLI


def _wait_template(args: argparse.Namespace, kubectl: str) -> None:
    deadline = time.monotonic() + args.timeout
    while True:
        try:  # KServe creates its Deployment a moment after the InferenceService
            pending = template_pending(
                kubectl_json(kubectl, args.namespace, f"deployment/{args.deployment}"), args.value
            )
        except RolloutError as exc:
            pending = str(exc)
        if pending is None:
            return
        if time.monotonic() > deadline:
            raise RolloutError(f"deployment/{args.deployment}: {pending} after {args.timeout:.0f} s")
        time.sleep(2)


def _verify(args: argparse.Namespace, kubectl: str) -> None:
    deadline = time.monotonic() + args.settle
    _, pods = observe(kubectl, args.namespace, args.deployment)
    while pods.stale and time.monotonic() < deadline:  # old pods being scaled down after rollout status
        time.sleep(2)
        _, pods = observe(kubectl, args.namespace, args.deployment)
    url = f"http://127.0.0.1:{args.port}/v2/models/{args.model_name}"
    answer = ask(lambda pod: probe_command(kubectl, args.namespace, pod, args.container, url))
    verified, problems = verify(pods, answer, args.version)
    if problems:
        raise RolloutError("; ".join(problems))
    print(f"{verified}/{pods.desired}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("plan", help="what to set, from serving.registry's JSON on stdin")
    p.add_argument("--source", required=True, choices=("registry", "storage"))
    p.add_argument("--values", help="the release's `helm get values --all -o json` (a file)")
    w = commands.add_parser("wait-template", help="wait until the Deployment's pod template serves --value")
    v = commands.add_parser("verify", help="every Ready pod answers --version")
    for sub in (w, v):
        sub.add_argument("--namespace", required=True)
        sub.add_argument("--deployment", required=True)
    w.add_argument("--value", required=True)
    w.add_argument("--timeout", type=float, default=300)
    v.add_argument("--container", required=True)
    v.add_argument("--model-name", required=True)
    v.add_argument("--port", type=int, default=8080)
    v.add_argument("--version", required=True)
    v.add_argument("--settle", type=float, default=60, help="seconds older pods get to leave")
    args = parser.parse_args(argv)
    kubectl = os.environ.get("KUBECTL", "kubectl")
    try:
        if args.command == "plan":
            try:
                resolved = json.loads(sys.stdin.read())
                values = None
                if args.values:
                    with open(args.values) as f:
                        values = json.load(f)
            except (OSError, ValueError) as exc:
                raise RolloutError(f"cannot read the plan's input: {exc}") from exc
            for key, value in plan(resolved, args.source, values).items():
                if re.search(r"[\n\r]", value):
                    raise RolloutError(f"{key} holds a line break: {value!r}")
                print(f"{key}={value}")
        elif args.command == "wait-template":
            _wait_template(args, kubectl)
        else:
            _verify(args, kubectl)
    except RolloutError as exc:
        print(f"rollout: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
