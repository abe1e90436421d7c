"""The image's requirement set: requirements/serve.lock pins and hashes every package the predictor
installs, agrees with pyproject.toml's ``serve`` ranges, and the Dockerfile installs exactly it."""

from __future__ import annotations

import re
import tomllib

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.conftest import ROOT

LOCK = ROOT / "requirements" / "serve.lock"
OVERRIDES = ROOT / "requirements" / "serve-overrides.txt"
NEVER = Marker("sys_platform == 'never'")
LINUX = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
         "python_version": "3.11", "python_full_version": "3.11.2", "implementation_name": "cpython",
         "platform_python_implementation": "CPython", "os_name": "posix"}  # fmt: skip


def _entries() -> list[tuple[Requirement, list[str]]]:
    """Each pin of the lock with its hashes (a pin may repeat under different markers)."""
    text = LOCK.read_text().replace("\\\n", " ")
    entries = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        hashes = re.findall(r"--hash=(sha256:[0-9a-f]{64})", line)
        requirement = Requirement(re.sub(r"--hash=\S+", "", line).strip())
        entries.append((requirement, hashes))
    return entries


def _installed_on_linux() -> dict[str, str]:
    pins = {}
    for requirement, _ in _entries():
        if requirement.marker is None or requirement.marker.evaluate(LINUX):
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{requirement} is not pinned"
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def test_every_pin_is_exact_and_hashed() -> None:
    entries = _entries()
    assert len(entries) > 50
    for requirement, hashes in entries:
        (spec,) = requirement.specifier
        assert spec.operator == "==", requirement
        assert hashes, f"{requirement.name} has no hash: regenerate with make lock"


def test_the_lock_satisfies_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _installed_on_linux()
    for line in project["dependencies"] + project["optional-dependencies"]["serve"]:
        wanted = Requirement(line)
        name = canonicalize_name(wanted.name)
        assert name in pins, f"{wanted.name} is in pyproject's serve set but not in the lock: make lock"
        assert wanted.specifier.contains(pins[name], prereleases=True), (
            f"the lock pins {wanted.name}=={pins[name]}, outside pyproject's {wanted.specifier}: make lock"
        )


def test_left_out_packages_are_never_installed() -> None:
    """What serve-overrides.txt leaves out (unused storage backends, build tooling) is not installed on
    any platform; the backends the chart supports are."""
    left_out = {
        canonicalize_name(Requirement(line).name)
        for line in OVERRIDES.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"setuptools", "grpcio-tools", "azure-storage-blob", "huggingface-hub"} <= left_out
    for requirement, _ in _entries():
        if canonicalize_name(requirement.name) in left_out:
            assert str(requirement.marker) == str(NEVER), requirement
    pins = _installed_on_linux()
    assert "pip" not in pins and not left_out & set(pins)
    assert {
        "kserve",
        "kserve-storage",
        "boto3",
        "google-cloud-storage",
        "onnxruntime",
        "mlflow-skinny",
    } <= set(pins)


def test_the_dockerfile_installs_the_lock_and_nothing_else() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install ([^\n&]+)", dockerfile)
    assert installs == ["--require-hashes --no-deps -r /tmp/serve.lock"], installs
    assert "COPY requirements/serve.lock /tmp/serve.lock" in dockerfile
    assert "pip uninstall --yes setuptools pip" in dockerfile
    assert "requirements" not in (ROOT / ".dockerignore").read_text().split()
