"""Promotion as a rollout, measured with the real containers: the seconds from moving ``champion`` to every
replica answering the new version, then the same for the rollback. Run with ``make bench-rollout`` or

    .venv/bin/python bench/bench_rollout.py [--replicas 2] [--image credit-risk-predictor:bench]

The kind job measures the same thing on a cluster (k8s/rollout.sh); this is the laptop version of that
design, without Kubernetes: moto's S3 server (the S3 protocol; MinIO in the kind job) and a real
``mlflow server`` whose artifact root is that bucket (``s3://`` locations handed out), two model versions
registered, ``--replicas`` predictor containers of the image per release, each run as the chart runs it
(read-only root, a tmpfs /tmp, non-root). Two releases, as in the kind job:

- ``registry``: ``--model-uri models:/credit-risk/N`` (the predictor downloads through MLflow);
- ``storage``: the chart's init container (``python -m serving.storage <s3 location> /mnt/models`` into a
  fresh volume per replica), then the predictor on ``/mnt/models``.

A rollout here is what the chart's ``RollingUpdate`` with ``maxSurge: 100%`` / ``maxUnavailable: 0`` does:
resolve the alias (``python -m serving.registry resolve``), start every new replica at once, wait until each
is ready and answers the new version, then stop the old ones. Writes ``bench/results/rollout.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.net import free_port, get_json, http  # noqa: E402
from harness.servers import mlflow_server, s3_server  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "rollout.json"


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:4])} failed: {result.stderr[-2000:]}")
    return result.stdout.strip()


class Replica:
    """One predictor container, run as the chart runs it, on the host network."""

    def __init__(self, image: str, release: str, source: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.name = f"rollout-{release}-{self.port}"
        self.volume = f"{self.name}-models"
        run = ["run", "--detach", "--network", "host", "--read-only", "--tmpfs", "/tmp:rw,size=256m",
               "--user", "10001:10001", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]  # fmt: skip
        environment = [f"--env={k}={v}" for k, v in env.items()]
        if source.startswith("models:/"):
            docker(
                *run,
                "--name",
                self.name,
                *environment,
                image,
                "--model-uri",
                source,
                "--http-port",
                str(self.port),
            )
            return
        # The init container: into a fresh volume (an emptyDir per pod), then the predictor reads it.
        docker("volume", "create", self.volume)
        # An emptyDir is writable by the pod's fsGroup; a fresh docker volume is root's: hand it over.
        docker("run", "--rm", "--user", "0", "--volume", f"{self.volume}:/v", "--entrypoint", "chown", image,
               "10001:10001", "/v")  # fmt: skip
        init = [run[0], *run[2:]]  # not detached: the init container must finish first
        docker(*init, "--rm", "--volume", f"{self.volume}:/mnt/models", *environment, "--entrypoint", "python",
               image, "-m", "serving.storage", source, "/mnt/models")  # fmt: skip
        docker(*run, "--name", self.name, "--volume", f"{self.volume}:/mnt/models:ro", image,
               "--model-uri", "/mnt/models", "--http-port", str(self.port))  # fmt: skip

    def version(self) -> str | None:
        url = f"http://127.0.0.1:{self.port}"
        try:
            if http("GET", url + "/v2/health/ready", timeout=2).status != 200:
                return None
            return get_json(url + "/v2/models/credit-risk", timeout=2)["versions"][0]
        except OSError:
            return None

    def remove(self) -> None:
        docker("rm", "--force", self.name, check=False)
        docker("volume", "rm", "--force", self.volume, check=False)


def resolve(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "serving.registry", "resolve", "models:/credit-risk@champion"],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout)


def rollout(image: str, release: str, replicas: int, old: list[Replica], env: dict[str, str],
            host_env: dict[str, str]) -> tuple[list[Replica], dict]:  # fmt: skip
    """Resolve, surge every new replica at once, wait for all on the new version, retire the old."""
    started = time.monotonic()
    target = resolve(host_env)
    source = target["model_uri"] if release == "registry" else target["storage_uri"]
    with ThreadPoolExecutor(replicas) as pool:
        new = list(pool.map(lambda _: Replica(image, release, source, env), range(replicas)))
    deadline = time.monotonic() + 300
    while [r.version() for r in new] != [target["version"]] * replicas:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{release}: replicas not on version {target['version']} after 300 s")
        time.sleep(0.2)
    all_new = time.monotonic() - started
    for replica in old:
        replica.remove()
    return new, {"version": target["version"], "seconds_to_all_replicas": round(all_new, 2),
                 "seconds_to_old_retired": round(time.monotonic() - started, 2)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--image", default="credit-risk-predictor:bench")
    parser.add_argument("--no-build", action="store_true", help="use --image as it is")
    args = parser.parse_args(argv)
    if not args.no_build:
        docker("build", "-t", args.image, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    results: dict = {"replicas": args.replicas, "image": args.image, "releases": {}}
    with ExitStack() as stack:
        # Host networking: the containers reach both servers on 127.0.0.1, as the host does.
        s3 = stack.enter_context(s3_server())
        tracking = stack.enter_context(mlflow_server(work, s3, proxied=False))
        pod_env = {**s3.env(), "MLFLOW_TRACKING_URI": tracking}
        host_env = {**os.environ, **pod_env, "PYTHONPATH": str(ROOT)}
        from mlflow import MlflowClient

        os.environ.update(pod_env)
        for version, seed in ((1, 7), (2, 11)):  # two different models, so the version check means something
            out = work / f"v{version}"
            subprocess.run([sys.executable, str(ROOT / "k8s" / "make_model.py"), "--out", str(out), "--seed", str(seed),
                            "--version", str(version)], env=host_env, check=True, capture_output=True, timeout=900)  # fmt: skip
            # The kind job's registration (k8s/register.py): one implementation, version checked.
            subprocess.run([sys.executable, str(ROOT / "k8s" / "register.py"), "--tracking-uri", tracking,
                            "register", str(out), "--experiment", "bench-rollout"],
                           env=host_env, check=True, capture_output=True, timeout=300)  # fmt: skip
        client = MlflowClient(tracking)
        client.set_registered_model_alias("credit-risk", "champion", "1")
        for release in ("registry", "storage"):
            live, _ = rollout(args.image, release, args.replicas, [], pod_env, host_env)
            stack.callback(lambda rs=live: [r.remove() for r in rs])
            steps = {}
            for step, version in (("promote", "2"), ("rollback", "1")):
                client.set_registered_model_alias("credit-risk", "champion", version)
                previous = live
                live, steps[step] = rollout(args.image, release, args.replicas, previous, pod_env, host_env)
                stack.callback(lambda rs=live: [r.remove() for r in rs])
                assert steps[step]["version"] == version
            results["releases"][release] = steps
            for replica in live:
                replica.remove()
            print(f"{release:9s} promote {steps['promote']['seconds_to_all_replicas']:5.1f}s, rollback "
                  f"{steps['rollback']['seconds_to_all_replicas']:5.1f}s to all {args.replicas} replicas")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
