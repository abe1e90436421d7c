"""Where the chart's pods get their model (model.storageUri, model.uri, model.volume) and how a new model
version becomes a rollout; plus the pod-level settings a platform team sets on day one (labels that do not
restart pods, an unset uid for OpenShift, one scrape per pod, PDB bounds, topology spread, extra volumes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy.conftest import (
    KUBERNETES_VERSION,
    arg,
    by_kind,
    combo_values,
    deep_merge,
    one,
    predictor_container,
    require_module,
)

HOSTPATH = combo_values("deployment", False, False, "hostPath")
S3 = {"model": {"storageUri": "s3://models/credit-risk/3", "storage": {"secretName": "s3-credentials"}}}


def pod_spec(objects: list[dict]) -> dict:
    workload = (by_kind(objects, "Deployment") + by_kind(objects, "InferenceService"))[0]
    return (
        workload["spec"]["template"]["spec"]
        if workload["kind"] == "Deployment"
        else workload["spec"]["predictor"]
    )


def pod_metadata(objects: list[dict]) -> dict:
    """Labels and annotations the pods get (kserve: spec.predictor.labels/annotations, copied by KServe)."""
    workload = (by_kind(objects, "Deployment") + by_kind(objects, "InferenceService"))[0]
    if workload["kind"] == "Deployment":
        return workload["spec"]["template"]["metadata"]
    return {k: workload["spec"]["predictor"].get(k, {}) for k in ("labels", "annotations")}


def env_of(container: dict) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def volumes_of(spec: dict) -> dict[str, dict]:
    return {v["name"]: v for v in spec.get("volumes", [])}


def mounts_of(container: dict) -> dict[str, dict]:
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    return require_module("kubernetes_validate")


# ------------------------------------------------------------------------------------------ storageUri


def test_deployment_mode_downloads_s3_with_an_init_container_of_the_same_image(
    render: Callable[..., list[dict]], kubernetes_validate: Any
) -> None:
    values = deep_merge(S3, {"mode": "deployment", "model": {"file": "model.onnx", "storage": {
        "sizeLimit": "2Gi",
        "s3": {"endpoint": "https://minio.storage:9000", "region": "eu-west-1", "verifySsl": True,
               "virtualHostedStyle": True, "caBundleConfigMap": "minio-ca", "caBundleKey": "ca.crt"}}}})  # fmt: skip
    objects = render(values)
    spec = pod_spec(objects)
    predictor = predictor_container(objects)
    (init,) = spec["initContainers"]
    assert init["name"] == "storage-initializer"
    assert init["image"] == predictor["image"] and init["imagePullPolicy"] == predictor["imagePullPolicy"]
    assert init["command"] == ["python", "-m", "serving.storage"]
    assert init["args"] == ["s3://models/credit-risk/3", "/mnt/models"]
    assert init["securityContext"] == predictor["securityContext"]  # read-only root, non-root, no caps
    env = env_of(init)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # KServe's Secret format, key = variable
        assert env[key] == {"secretKeyRef": {"name": "s3-credentials", "key": key, "optional": True}}
    assert env["AWS_ENDPOINT_URL"] == "https://minio.storage:9000"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert (env["S3_VERIFY_SSL"], env["S3_USER_VIRTUAL_BUCKET"]) == ("1", "true")
    assert env["AWS_CA_BUNDLE"] == "/etc/credit-risk/storage-ca/ca.crt"
    volumes = volumes_of(spec)
    assert volumes["model-store"] == {"name": "model-store", "emptyDir": {"sizeLimit": "2Gi"}}
    assert volumes["storage-ca"]["configMap"] == {
        "name": "minio-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    init_mounts, predictor_mounts = mounts_of(init), mounts_of(predictor)
    assert init_mounts["/mnt/models"]["name"] == "model-store" and not init_mounts["/mnt/models"].get(
        "readOnly"
    )
    assert init_mounts["/etc/credit-risk/storage-ca"]["readOnly"] is True
    assert predictor_mounts["/mnt/models"] == {
        "name": "model-store",
        "mountPath": "/mnt/models",
        "readOnly": True,
    }
    assert arg(predictor["args"], "--model-uri") == "/mnt/models/model.onnx"
    assert "STORAGE_URI" not in env_of(predictor)  # no KServe webhook here
    # Secrets never reach the predictor container: only the downloader holds them.
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env_of(predictor))
    (deployment,) = by_kind(objects, "Deployment")
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_deployment_mode_defaults_verify_tls_and_path_style(render: Callable[..., list[dict]]) -> None:
    (init,) = pod_spec(render(deep_merge(S3, {"mode": "deployment"})))["initContainers"]
    env = env_of(init)
    assert (env["S3_VERIFY_SSL"], env["S3_USER_VIRTUAL_BUCKET"]) == ("1", "false")
    assert not {"AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_CA_BUNDLE"} & set(env)  # AWS defaults


def test_gcs_credentials_are_a_mounted_key_file(
    render: Callable[..., list[dict]], kubernetes_validate: Any
) -> None:
    objects = render({"mode": "deployment", "model": {"storageUri": "gs://models/credit-risk/3",
                                                      "storage": {"secretName": "gcs-key"}}})  # fmt: skip
    spec = pod_spec(objects)
    (init,) = spec["initContainers"]
    path = env_of(init)["GOOGLE_APPLICATION_CREDENTIALS"]
    assert path == "/etc/credit-risk/storage-secret/gcloud-application-credentials.json"
    assert mounts_of(init)["/etc/credit-risk/storage-secret"]["name"] == "storage-secret"
    assert volumes_of(spec)["storage-secret"]["secret"]["secretName"] == "gcs-key"
    assert "AWS_ACCESS_KEY_ID" not in env_of(init)
    kubernetes_validate.validate(one(objects, "Deployment"), KUBERNETES_VERSION, strict=True)


def test_https_needs_no_credentials(render: Callable[..., list[dict]]) -> None:
    (init,) = pod_spec(
        render({"mode": "deployment", "model": {"storageUri": "https://models.bank/cr/3.onnx"}})
    )["initContainers"]
    assert init["args"][0] == "https://models.bank/cr/3.onnx" and "env" not in init


def test_pvc_storage_uri_mounts_the_claim_without_a_download(render: Callable[..., list[dict]]) -> None:
    objects = render({"mode": "deployment", "model": {"storageUri": "pvc://models/credit-risk/3"}})
    spec = pod_spec(objects)
    assert "initContainers" not in spec
    assert volumes_of(spec)["model"]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    mount = mounts_of(predictor_container(objects))["/mnt/models"]
    assert (mount["subPath"], mount["readOnly"]) == ("credit-risk/3", True)
    whole = render({"mode": "deployment", "model": {"storageUri": "pvc://models"}})
    assert "subPath" not in mounts_of(predictor_container(whole))["/mnt/models"]


@pytest.mark.parametrize(
    "uri", ["s3://models/credit-risk/3", "gs://models/cr/3", "pvc://models/credit-risk/3"]
)
def test_kserve_mode_hands_the_uri_to_kserves_storage_initializer(
    render: Callable[..., list[dict]], uri: str
) -> None:
    objects = render({"model": {"storageUri": uri, "storage": {"secretName": "creds"}}})
    spec = pod_spec(objects)
    container = predictor_container(objects)
    assert env_of(container)["STORAGE_URI"] == uri  # KServe's webhook injects its initializer / the claim
    assert arg(container["args"], "--model-uri") == "/mnt/models"
    assert "initContainers" not in spec and "/mnt/models" not in mounts_of(container)  # KServe adds both
    (account,) = by_kind(objects, "ServiceAccount")
    assert account["secrets"] == [{"name": "creds"}]  # where KServe's credential builder looks
    assert spec["serviceAccountName"] == account["metadata"]["name"]


def test_deployment_mode_service_account_lists_no_secret(render: Callable[..., list[dict]]) -> None:
    (account,) = by_kind(render(deep_merge(S3, {"mode": "deployment"})), "ServiceAccount")
    assert "secrets" not in account


# ------------------------------------------------------------------------------------------ versions and rollouts


@pytest.mark.parametrize("mode", ["deployment", "kserve"])
@pytest.mark.parametrize(
    ("v2", "v3"),
    [
        pytest.param(
            S3, deep_merge(S3, {"model": {"storageUri": "s3://models/credit-risk/4"}}), id="storage"
        ),
        pytest.param(
            combo_values("deployment", False, False, "uri"),
            deep_merge(
                combo_values("deployment", False, False, "uri"), {"model": {"uri": "models:/credit-risk/4"}}
            ),
            id="registry",
        ),
    ],
)
def test_a_new_model_version_changes_the_pod_template(
    render: Callable[..., list[dict]], mode: str, v2: dict, v3: dict
) -> None:
    """A pinned version in the pod template: a new one is a new ReplicaSet (a rollout), and the pods say
    which model they serve in credit-risk.batibank.io/model-source."""
    before, after = render({**v2, "mode": mode}), render({**v3, "mode": mode})
    sources = [
        pod_metadata(o)["annotations"]["credit-risk.batibank.io/model-source"] for o in (before, after)
    ]
    expected = (
        ["s3://models/credit-risk/3", "s3://models/credit-risk/4"]
        if "storageUri" in v2["model"]
        else ["models:/credit-risk/3", "models:/credit-risk/4"]
    )
    assert sources == expected
    assert pod_spec(before) != pod_spec(after) or pod_metadata(before) != pod_metadata(after)


def test_alias_is_refused_unless_allowed(helm: str, render: Callable[..., list[dict]]) -> None:
    values = {"model": {"uri": "models:/credit-risk@champion", "allowAlias": True},
              "mlflow": {"trackingUri": "http://mlflow:5000"}}  # fmt: skip
    container = predictor_container(render(values))
    assert arg(container["args"], "--model-uri") == "models:/credit-risk@champion"


def test_kserve_standard_mode_rolls_like_the_deployment(render: Callable[..., list[dict]]) -> None:
    values = deep_merge(S3, {"rollout": {"maxSurge": 1, "maxUnavailable": "25%"}})
    predictor = one(render(values), "InferenceService")["spec"]["predictor"]
    assert predictor["deploymentStrategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}  # fmt: skip
    knative = one(render({**values, "kserve": {"deploymentMode": "Knative"}}), "InferenceService")
    assert "deploymentStrategy" not in knative["spec"]["predictor"]  # Knative's revisions roll by traffic


# ------------------------------------------------------------------------------------------ labels


@pytest.mark.parametrize("mode", ["deployment", "kserve"])
def test_a_chart_or_image_bump_leaves_pod_labels_alone(
    helm: str, render: Callable[..., list[dict]], mode: str
) -> None:
    """KServe copies the InferenceService's labels into the pod template: any chart/app version there would
    restart every pod on each chart bump."""
    base = deep_merge(S3, {"mode": mode})
    one_tag, other_tag = render(base), render(deep_merge(base, {"image": {"tag": "0.9.9"}}))
    assert pod_metadata(one_tag)["labels"] == pod_metadata(other_tag)["labels"]
    for labels in [
        pod_metadata(one_tag)["labels"],
        *[o["metadata"]["labels"] for o in by_kind(one_tag, "InferenceService")],
    ]:
        assert not {"helm.sh/chart", "app.kubernetes.io/version"} & set(labels), labels
    # The chart's other objects keep the usual labels.
    assert "helm.sh/chart" in one(one_tag, "ServiceAccount")["metadata"]["labels"]


# ------------------------------------------------------------------------------------------ pod settings


@pytest.mark.parametrize("mode", ["deployment", "kserve"])
def test_unset_uid_gid_are_left_to_the_platform(render: Callable[..., list[dict]], mode: str) -> None:
    """OpenShift's restricted-v2 SCC assigns uid, gid and fsGroup from the namespace range."""
    values = deep_merge(
        S3, {"mode": mode, "securityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None}}
    )
    objects = render(values)
    spec = pod_spec(objects)
    containers = spec["containers"] + spec.get("initContainers", [])
    for context in [spec["securityContext"], *[c["securityContext"] for c in containers]]:
        assert context["runAsNonRoot"] is True
        assert not {"runAsUser", "runAsGroup", "fsGroup", "fsGroupChangePolicy"} & set(context), context
    default = pod_spec(render(deep_merge(S3, {"mode": mode})))["securityContext"]
    assert (default["runAsUser"], default["runAsGroup"], default["fsGroup"]) == (10001, 10001, 10001)


@pytest.mark.parametrize("mode", ["deployment", "kserve"])
def test_scrape_annotations_give_way_to_the_service_monitor(
    render: Callable[..., list[dict]], mode: str
) -> None:
    base = deep_merge(S3, {"mode": mode})
    monitored = deep_merge(base, {"monitoring": {"serviceMonitor": {"enabled": True}}})

    def scrape_keys(objects: list[dict]) -> set[str]:
        keys = set(pod_metadata(objects)["annotations"])
        keys |= {k for o in by_kind(objects, "InferenceService") for k in o["metadata"]["annotations"]}
        return {
            k
            for k in keys
            if k.startswith(("prometheus.io/", "prometheus.kserve.io/", "serving.kserve.io/enable-prom"))
        }

    assert scrape_keys(render(base))  # annotation-based scraping by default
    with_monitor = render(monitored)
    assert by_kind(with_monitor, "ServiceMonitor") and not scrape_keys(with_monitor)
    # ServiceMonitor asked for but the operator's CRDs absent: annotations stay, so the pods are scraped.
    assert scrape_keys(render(monitored, monitoring_crds=False))


@pytest.mark.parametrize(
    ("pdb", "expected"),
    [({}, {"maxUnavailable": 1}), ({"maxUnavailable": "25%"}, {"maxUnavailable": "25%"}),
     ({"maxUnavailable": None, "minAvailable": "50%"}, {"minAvailable": "50%"})],
)  # fmt: skip
def test_pdb_takes_a_number_or_a_percentage(
    render: Callable[..., list[dict]], pdb: dict, expected: dict
) -> None:
    spec = one(render(deep_merge(HOSTPATH, {"podDisruptionBudget": pdb})), "PodDisruptionBudget")["spec"]
    assert {k: v for k, v in spec.items() if k != "selector"} == expected


@pytest.mark.parametrize("mode", ["deployment", "kserve"])
def test_default_topology_spread_counts_one_rollout(render: Callable[..., list[dict]], mode: str) -> None:
    objects = render(deep_merge(S3, {"mode": mode}))
    constraints = {c["topologyKey"]: c for c in pod_spec(objects)["topologySpreadConstraints"]}
    assert constraints["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert constraints["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    labels = pod_metadata(objects)["labels"]
    for constraint in constraints.values():
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]  # surge pods are not skew
        assert constraint["labelSelector"]["matchLabels"].items() <= labels.items()
    own = [{"topologyKey": "rack", "maxSkew": 2, "whenUnsatisfiable": "ScheduleAnyway"}]
    assert (
        pod_spec(render(deep_merge(S3, {"mode": mode, "topologySpreadConstraints": own})))[
            "topologySpreadConstraints"
        ]
        == own
    )
    assert "topologySpreadConstraints" not in pod_spec(
        render(deep_merge(S3, {"mode": mode, "defaultTopologySpread": False}))
    )


def test_extra_volumes_mounts_init_containers_env_from(
    render: Callable[..., list[dict]], kubernetes_validate: Any
) -> None:
    warmup = {"name": "warm-up", "image": "busybox:1.36", "command": ["ls", "/mnt/models"],
              "volumeMounts": [{"name": "model-store", "mountPath": "/mnt/models", "readOnly": True}]}  # fmt: skip
    values = deep_merge(S3, {
        "mode": "deployment",
        "extraVolumes": [{"name": "bank-ca", "configMap": {"name": "bank-ca"}}],
        "extraVolumeMounts": [{"name": "bank-ca", "mountPath": "/etc/bank-ca", "readOnly": True}],
        "initContainers": [warmup],
        "envFrom": [{"configMapRef": {"name": "predictor-settings"}}],
    })  # fmt: skip
    objects = render(values)
    spec = pod_spec(objects)
    assert [c["name"] for c in spec["initContainers"]] == ["storage-initializer", "warm-up"]  # model first
    assert volumes_of(spec)["bank-ca"]["configMap"] == {"name": "bank-ca"}
    container = predictor_container(objects)
    assert mounts_of(container)["/etc/bank-ca"]["name"] == "bank-ca"
    assert container["envFrom"] == [{"configMapRef": {"name": "predictor-settings"}}]
    kubernetes_validate.validate(one(objects, "Deployment"), KUBERNETES_VERSION, strict=True)
