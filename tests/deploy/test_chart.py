"""The Helm chart as helm sees it: lint, render every main values combination, refuse bad values,
derive every setting from one value, follow the monitoring symlinks, package."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.conftest import (
    CHART,
    COMBOS,
    K8S,
    KUBERNETES_VERSION,
    MONITORING_API,
    NAMESPACE,
    RELEASE,
    ROOT,
    arg,
    by_kind,
    combo_values,
    deep_merge,
    one,
    predictor_container,
    run_helm,
    yaml_module,
)

RULES = ROOT / "monitoring" / "prometheus" / "credit-risk-rules.yml"
DASHBOARDS = ROOT / "monitoring" / "grafana" / "dashboards"
HOSTPATH = combo_values("deployment", False, False, "hostPath")


# ------------------------------------------------------------------------------------------ lint + render


@pytest.mark.parametrize("combo", COMBOS)
def test_lint_strict(helm: str, write_values: Callable[[dict], Path], combo: tuple) -> None:
    # helm lint has no --api-versions: checkCRDs=false makes it lint the ServiceMonitor/PrometheusRule too.
    values = write_values(deep_merge(combo_values(*combo), {"monitoring": {"checkCRDs": False}}))
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values), "--namespace", NAMESPACE,
                      "--kube-version", KUBERNETES_VERSION)  # fmt: skip
    assert "0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize("combo", COMBOS)
def test_render(render: Callable[..., list[dict]], combo: tuple) -> None:
    mode, monitoring, network_policy, source = combo
    objects = render(combo_values(*combo))
    kinds = sorted(o["kind"] for o in objects)
    workload = {
        "kserve": ["InferenceService"],
        "deployment": ["Deployment", "HorizontalPodAutoscaler", "Service"],
    }
    expected = ["PodDisruptionBudget", "ServiceAccount", "Pod", *workload[mode]]
    if monitoring:
        dashboards = sorted(DASHBOARDS.glob("*.json"))
        expected += ["ServiceMonitor", "PrometheusRule"] + ["ConfigMap"] * len(dashboards)
    if network_policy:
        expected.append("NetworkPolicy")
    assert kinds == sorted(expected)
    assert all(o["metadata"]["name"].startswith(RELEASE) for o in objects)

    container = predictor_container(objects)
    uri = arg(container["args"], "--model-uri")
    if source == "uri":
        assert uri == "models:/credit-risk/3"
        assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.mlflow:5000"} in container["env"]
    elif source == "storage":
        assert uri == "/mnt/models"
        assert any(m["mountPath"] == "/mnt/models" for m in container["volumeMounts"]) == (
            mode == "deployment"
        )
    else:
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert uri == mounts["model"]["mountPath"] == "/models"
        assert mounts["model"]["readOnly"] is True


def test_kind_values_render_both_modes(render: Callable[..., list[dict]]) -> None:
    """k8s/values-kind.yaml (the e2e workflow's values) renders in both modes."""
    values = yaml_module().safe_load((K8S / "values-kind.yaml").read_text())
    for mode in ("deployment", "kserve"):
        container = predictor_container(render({**values, "mode": mode}))
        assert container["image"] == "credit-risk-predictor:e2e"
        assert container["imagePullPolicy"] == "Never"


# ------------------------------------------------------------------------------------------ bad values

BAD_VALUES = [
    pytest.param(
        {"model": {"volum": {"type": "pvc"}}}, "Additional property volum is not allowed", id="typo-key"
    ),
    pytest.param({"servr": {"workers": 2}}, "Additional property servr is not allowed", id="typo-top-level"),
    pytest.param({"server": {"workers": "two"}}, "server.workers: Invalid type", id="wrong-type"),
    pytest.param(
        {"autoscaling": {"enabled": "yes"}}, "autoscaling.enabled: Invalid type", id="bool-as-string"
    ),
    pytest.param({"mode": "knative"}, "mode: mode must be one of", id="bad-enum"),
    pytest.param({"model": {"volume": {"type": "emptyDir"}}}, "model.volume.type", id="bad-volume-type"),
    pytest.param(
        {"securityContext": {"runAsUser": 0}}, "runAsUser: Must be greater than or equal to 1", id="root"
    ),
    pytest.param({"server": {"threshold": 1.5}}, "server.threshold", id="threshold-out-of-range"),
    pytest.param(
        {"model": {"uri": "s3://bucket/model.onnx"}}, "model.uri: Does not match pattern", id="bad-uri"
    ),
    pytest.param({"resources": {"limits": {"memory": "lots"}}}, "resources.limits.memory", id="bad-quantity"),
    pytest.param({"model": {"storageUri": "ftp://host/model"}}, "model.storageUri: Does not match pattern", id="bad-storage-scheme"),
    pytest.param({"model": {"storageUri": "/models/a.onnx"}}, "model.storageUri: Does not match pattern", id="storage-path"),
    pytest.param({"kserve": {"version": "0.14"}}, "kserve.version", id="unsupported-kserve"),
    pytest.param({"kserve": {"deploymentMode": "Raw"}}, "kserve.deploymentMode", id="bad-kserve-mode"),
    pytest.param({"rollout": {"maxSurge": "all"}}, "rollout.maxSurge", id="bad-surge"),
    pytest.param({"podDisruptionBudget": {"maxUnavailable": "0%"}}, "podDisruptionBudget.maxUnavailable", id="pdb-zero-percent"),
    pytest.param({"model": {"storage": {"s3": {"endpoint": "minio:9000"}}}}, "model.storage.s3.endpoint", id="endpoint-without-scheme"),
]  # fmt: skip


@pytest.mark.parametrize(("bad", "message"), BAD_VALUES)
def test_bad_values_fail_schema(
    helm: str, write_values: Callable[[dict], Path], bad: dict, message: str
) -> None:
    values = write_values(deep_merge(HOSTPATH, bad))
    template = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(values), check=False)
    assert template.returncode != 0, "helm template accepted bad values"
    assert "don't meet the specifications of the schema" in template.stderr
    assert message in template.stderr, template.stderr
    lint = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values), check=False)
    assert lint.returncode != 0 and message in lint.stdout, lint.stdout


FAILING_COMBINATIONS = [
    pytest.param({"mode": "deployment"}, "no model: set model.storageUri", id="no-model"),
    pytest.param({"model": {"uri": "models:/credit-risk/3"}}, "set mlflow.trackingUri", id="registry-without-mlflow"),
    pytest.param({"model": {"uri": "models:/credit-risk@champion"}, "mlflow": {"trackingUri": "http://mlflow:5000"}},
                 "Pin the version (models:/NAME/VERSION", id="alias-without-allow-alias"),
    pytest.param({**HOSTPATH, "model": {**HOSTPATH["model"], "storageUri": "s3://m/1"}},
                 "model.storageUri, model.volume.type are all set", id="two-model-sources"),
    pytest.param({"model": {"uri": "models:/credit-risk/3", "storageUri": "s3://m/1"}, "mlflow": {"trackingUri": "http://m"}},
                 "model.uri, model.storageUri are all set", id="uri-and-storage"),
    pytest.param({"model": {"uri": "/models/a.onnx", "file": "b.onnx"}}, "name the file in model.uri", id="file-with-uri"),
    pytest.param({"model": {"storageUri": "s3://m/1", "storage": {"s3": {"endpoint": "http://minio:9000"}}}},
                 "in kserve mode KServe's storage initializer reads them from the annotations", id="s3-values-in-kserve-mode"),
    pytest.param({"model": {"storageUri": "s3://m/1", "storage": {"secretName": "s3"}}, "serviceAccount": {"create": False}},
                 "list it on your ServiceAccount", id="kserve-secret-without-chart-service-account"),
    pytest.param({"mode": "deployment", "model": {"storageUri": "s3://m/1"}, "networkPolicy": {"enabled": True}},
                 "allows only DNS", id="storage-behind-dns-only-egress"),
    pytest.param({**HOSTPATH, "podDisruptionBudget": {"minAvailable": 1}}, "exactly one of maxUnavailable and minAvailable",
                 id="pdb-both-bounds"),
    pytest.param({"model": {"volume": {"type": "pvc"}}}, "set model.volume.pvc.claimName", id="pvc-without-claim"),
    pytest.param({"model": {"volume": {"type": "hostPath"}}}, "set model.volume.hostPath.path", id="hostpath-without-path"),
    pytest.param(
        {"model": {"uri": "models:/credit-risk/3"}, "mlflow": {"trackingUri": "http://mlflow:5000"},
         "networkPolicy": {"enabled": True}},
        "allows only DNS", id="registry-behind-dns-only-egress",
    ),
    pytest.param({**HOSTPATH, "mode": "kserve", "kserve": {"deploymentMode": "Serverless"}}, "Serverless", id="serverless-hostpath"),
    pytest.param({**HOSTPATH, "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, "is above", id="min-above-max"),
]  # fmt: skip


@pytest.mark.parametrize(("values", "message"), FAILING_COMBINATIONS)
def test_impossible_combinations_fail_with_the_fix(
    helm: str, write_values: Callable[[dict], Path], values: dict, message: str
) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(write_values(values)), check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_threshold_accepts_set_strings(helm: str, write_values: Callable[[dict], Path]) -> None:
    """`--set server.threshold=0.4` passes a string (helm keeps decimals as strings): accepted and passed on."""
    result = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(write_values(HOSTPATH)),
                      "--set", "server.threshold=0.4")  # fmt: skip
    container = predictor_container([d for d in yaml_module().safe_load_all(result.stdout) if d])
    assert arg(container["args"], "--threshold") == "0.4"


# ------------------------------------------------------------------------------------------ one value each


def test_grace_period_drives_the_pod_termination(render: Callable[..., list[dict]]) -> None:
    for mode in ("deployment", "kserve"):
        for grace, pre_stop, margin in ((30, 5, 5), (12, 0, 3)):
            values = deep_merge(HOSTPATH, {"mode": mode, "server": {
                "gracePeriodSeconds": grace, "preStopSleepSeconds": pre_stop, "terminationMarginSeconds": margin}})  # fmt: skip
            objects = render(values)
            workload = (by_kind(objects, "Deployment") + by_kind(objects, "InferenceService"))[0]
            pod = (
                workload["spec"]["template"]["spec"]
                if mode == "deployment"
                else workload["spec"]["predictor"]
            )
            container = pod["containers"][0]
            assert arg(container["args"], "--grace-period-seconds") == str(grace)
            assert pod["terminationGracePeriodSeconds"] == pre_stop + grace + margin
            if pre_stop:
                assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(pre_stop)]
            else:
                assert "lifecycle" not in container


def test_server_values_become_flags(render: Callable[..., list[dict]]) -> None:
    values = deep_merge(HOSTPATH, {
        "model": {"name": "scorer", "file": "credit-risk-v7.onnx", "volume": {"mountPath": "/mnt/model"}},
        "server": {"httpPort": 9000, "workers": 3, "intraOpThreads": 2, "threshold": 0.42, "maxBatchRows": 500,
                   "maxRequestBytes": 134217728, "driftWindowSeconds": 600, "accessLog": True,
                   "extraArgs": ["--access-log", "false"]},
        "extraEnv": [{"name": "OMP_NUM_THREADS", "value": "1"}],
    })  # fmt: skip
    objects = render(values)
    container = predictor_container(objects)
    args = container["args"]
    assert arg(args, "--model-uri") == "/mnt/model/credit-risk-v7.onnx"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/mnt/model"}
    expected = {"--model-name": "scorer", "--http-port": "9000", "--workers": "3", "--intra-op-threads": "2",
                "--threshold": "0.42", "--max-batch-rows": "500", "--max-request-bytes": "134217728",
                "--drift-window-seconds": "600", "--metrics-dir": "/tmp/credit-risk-metrics"}  # fmt: skip
    assert {flag: arg(args, flag) for flag in expected} == expected
    assert args[-2:] == ["--access-log", "false"]  # extraArgs last: they win
    assert container["env"] == [{"name": "OMP_NUM_THREADS", "value": "1"}]
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"},
                                  {"name": "grpc", "containerPort": 8081, "protocol": "TCP"}]  # fmt: skip
    for probe, path in (("startupProbe", "/v2/health/live"), ("livenessProbe", "/v2/health/live"),
                        ("readinessProbe", "/v2/health/ready")):  # fmt: skip
        assert container[probe]["httpGet"] == {"path": path, "port": 9000}
    service = one(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pod_annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations["prometheus.io/port"] == "9000"


def test_kserve_inference_service(render: Callable[..., list[dict]]) -> None:
    isvc = one(render(deep_merge(HOSTPATH, {"mode": "kserve"})), "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
    assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "true"
    assert annotations["prometheus.kserve.io/port"] == "8080"
    assert annotations["prometheus.kserve.io/path"] == "/metrics"
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 6)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("cpu", 70)
    assert predictor["containers"][0]["name"] == "kserve-container"
    assert predictor["labels"]["app.kubernetes.io/component"] == "predictor"

    fixed = one(render(deep_merge(HOSTPATH, {"mode": "kserve", "replicas": 3, "autoscaling": {"enabled": False}})),
                "InferenceService")  # fmt: skip
    assert fixed["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "none"
    assert (fixed["spec"]["predictor"]["minReplicas"], fixed["spec"]["predictor"]["maxReplicas"]) == (3, 3)

    pvc = {"model": {"volume": {"type": "pvc", "pvc": {"claimName": "models"}}}}
    serverless = one(
        render(deep_merge(pvc, {"kserve": {"deploymentMode": "Serverless"}})), "InferenceService"
    )
    assert "serving.kserve.io/autoscalerClass" not in serverless["metadata"]["annotations"]
    container = serverless["spec"]["predictor"]["containers"][0]
    assert "startupProbe" not in container and "lifecycle" not in container  # Knative refuses both


def test_deployment_mode_scaling(render: Callable[..., list[dict]]) -> None:
    objects = render(HOSTPATH)
    deployment, hpa = one(objects, "Deployment"), one(objects, "HorizontalPodAutoscaler")
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    # Every new pod at once, the old ones only once all new ones are Ready: one model-load time per rollout.
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "100%", "maxUnavailable": 0}
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}  # fmt: skip
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    fixed = render(deep_merge(HOSTPATH, {"replicas": 3, "autoscaling": {"enabled": False}}))
    assert one(fixed, "Deployment")["spec"]["replicas"] == 3 and not by_kind(fixed, "HorizontalPodAutoscaler")


# ------------------------------------------------------------------------------------------ monitoring


def test_monitoring_objects_need_the_operator_api(render: Callable[..., list[dict]]) -> None:
    """checkCRDs (default): rendered only when the cluster serves monitoring.coreos.com/v1; checkCRDs=false:
    always. Dashboards are plain ConfigMaps: always when enabled."""
    values = combo_values("deployment", True, False, "hostPath")
    without_api = {o["kind"] for o in render(values, monitoring_crds=False)}
    assert not without_api & {"ServiceMonitor", "PrometheusRule"} and "ConfigMap" in without_api
    forced = {
        o["kind"]
        for o in render(deep_merge(values, {"monitoring": {"checkCRDs": False}}), monitoring_crds=False)
    }
    assert {"ServiceMonitor", "PrometheusRule"} <= forced
    assert {"ServiceMonitor", "PrometheusRule"} <= {o["kind"] for o in render(values, monitoring_crds=True)}


def test_dashboards_become_labelled_config_maps(render: Callable[..., list[dict]]) -> None:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files, f"no dashboards in {DASHBOARDS}"
    values = deep_merge(combo_values("deployment", True, False, "hostPath"), {"monitoring": {"dashboards": {
        "namespace": "grafana", "annotations": {"grafana_folder": "Credit risk"}}}})  # fmt: skip
    config_maps = by_kind(render(values), "ConfigMap")
    assert len(config_maps) == len(files)
    for cm, path in zip(sorted(config_maps, key=lambda c: c["metadata"]["name"]), files, strict=True):
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "grafana"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Credit risk"}
        assert json.loads(cm["data"][path.name]) == json.loads(path.read_text())


def test_service_monitor_selects_the_scraped_service(render: Callable[..., list[dict]]) -> None:
    # deployment mode: the chart's Service, by its labels and port name
    objects = render(combo_values("deployment", True, False, "hostPath"))
    monitor, service = one(objects, "ServiceMonitor"), one(objects, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    # kserve mode: the <name>-predictor Service KServe makes, named after the container port
    objects = render(combo_values("kserve", True, False, "hostPath"))
    monitor, isvc = one(objects, "ServiceMonitor"), one(objects, "InferenceService")
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": isvc["metadata"]["name"], "component": "predictor"}  # fmt: skip
    assert (
        monitor["spec"]["endpoints"][0]["port"]
        == isvc["spec"]["predictor"]["containers"][0]["ports"][0]["name"]
    )


# ------------------------------------------------------------------------------------------ symlinks, package, NOTES


def test_monitoring_files_are_symlinks_into_monitoring() -> None:
    for link, target in (("files/credit-risk-rules.yml", RULES), ("files/dashboards", DASHBOARDS)):
        path = CHART / link
        assert path.is_symlink(), f"{path} must be a relative symlink into monitoring/"
        assert not Path(path.readlink()).is_absolute()
        assert path.resolve() == target.resolve(), f"{path} -> {path.resolve()}, expected {target}"
        assert target.exists(), f"{target} is missing: the chart cannot load without it"


def test_package_embeds_the_monitoring_files(helm: str, tmp_path: Path) -> None:
    run_helm(helm, "package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("credit-risk-*.tgz")
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        rules = members["credit-risk/files/credit-risk-rules.yml"]
        assert rules.isfile(), "helm package stored a link, not the rule file"
        assert tar.extractfile(rules).read() == RULES.read_bytes()
        for path in DASHBOARDS.glob("*.json"):
            member = members[f"credit-risk/files/dashboards/{path.name}"]
            assert tar.extractfile(member).read() == path.read_bytes()
        assert not any(name.startswith("credit-risk/ci/") for name in members)
    # The packaged chart (no symlinks any more) renders the same monitoring objects.
    values = combo_values("kserve", True, False, "pvc")
    packaged = run_helm(helm, "template", RELEASE, str(archive), "--api-versions", MONITORING_API,
                        "-f", str(_write(tmp_path / "v.yaml", values)))  # fmt: skip
    kinds = [d["kind"] for d in yaml_module().safe_load_all(packaged.stdout) if d]
    assert "PrometheusRule" in kinds and "ConfigMap" in kinds


def _write(path: Path, values: dict) -> Path:
    path.write_text(yaml_module().safe_dump(values))
    return path


def render_notes(helm: str, values: Path, tmp_path: Path) -> str:
    """NOTES.txt as `helm install` prints it. `helm install --dry-run` needs a reachable cluster even in
    client mode, and `helm template` skips NOTES.txt: render it from a copy of the chart where a ConfigMap
    carries the same template."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart, symlinks=False)  # follows files/ -> monitoring/
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "_notes.tpl").write_text(
        '{{- define "test.notes" -}}\n' + notes + "\n{{- end }}\n"
    )
    (chart / "templates" / "notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include "test.notes" . | toJson }}\n'
    )
    result = run_helm(helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE, "-f", str(values),
                      "--show-only", "templates/notes.yaml")  # fmt: skip
    return yaml_module().safe_load(result.stdout)["data"]["notes"]


@pytest.mark.parametrize("mode", ["deployment", "kserve"])
def test_notes_give_the_first_request(
    helm: str, write_values: Callable[[dict], Path], tmp_path: Path, mode: str
) -> None:
    notes = render_notes(helm, write_values(deep_merge(HOSTPATH, {"mode": mode})), tmp_path)
    service = f"service/{RELEASE}-predictor 8080:80" if mode == "kserve" else f"service/{RELEASE} 8080:8080"
    assert f"kubectl -n {NAMESPACE} port-forward {service}" in notes
    assert "curl -s http://127.0.0.1:8080/v2/models/credit-risk/infer" in notes
    assert f"helm test {RELEASE}" in notes
    assert "WARNING" not in notes
    body = notes.split("-d '", 1)[1].split("'", 1)[0]
    data = json.loads(body)  # the curl body is valid JSON with one 26-feature row
    assert data["inputs"][0]["shape"] == [1, 26] and len(data["inputs"][0]["data"]) == 26


def test_notes_warn_when_monitoring_objects_are_skipped(
    helm: str, write_values: Callable[[dict], Path], tmp_path: Path
) -> None:
    values = write_values(combo_values("deployment", True, False, "hostPath"))
    assert "were NOT created" in render_notes(helm, values, tmp_path)  # no --api-versions: CRDs absent
