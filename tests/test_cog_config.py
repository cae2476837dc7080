"""cog.yaml as `cog build` reads it: the rules below come from Cog's Go source (replicate/cog at
6110c912, 2026-08; file:line cited with each), so that no `cog` CLI or Docker is needed to check it.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import sys

import yaml
from cog import BaseRunner

from tests.support import REPO

CONFIG = yaml.safe_load((REPO / "cog.yaml").read_text())

# pkg/config/data/config_schema_v1.0.json: `additionalProperties: false` at the top (line 285) and
# under `build` (line 159): any other key fails the build.
TOP_LEVEL_KEYS = {
    "build",
    "image",
    "model",
    "run",
    "predict",
    "train",
    "concurrency",
    "environment",
    "weights",
}
BUILD_KEYS = {
    "cuda",
    "cudnn",
    "gpu",
    "pre_install",
    "python_packages",
    "python_requirements",
    "python_version",
    "run",
    "sdk_version",
    "system_packages",
}
# config_schema_v1.0.json line 218: each `environment` entry.
ENVIRONMENT_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=.*$")
# pkg/config/cuda_compatibility.json: the CUDA base images Cog has (major.minor). A `cuda` that
# none matches fails with "CUDA X is not supported by Cog" (pkg/config/compatibility.go:244-258).
CUDA_BASE_IMAGES = {
    "11.0",
    "11.1",
    "11.2",
    "11.3",
    "11.4",
    "11.5",
    "11.6",
    "11.7",
    "11.8",
    "12.0",
    "12.1",
    "12.2",
    "12.3",
    "12.4",
    "12.5",
    "12.6",
    "12.8",
    "12.9",
    "13.0",
    "13.1",
    "13.2",
}
# pkg/config/torch_compatibility.json: the newest torch Cog maps to a CUDA. For a newer pin with no
# `cuda`, Cog stops: "cog doesn't know what CUDA version is compatible with torch==..."
# (pkg/config/config.go:648-653); with `cuda` set it warns and installs the pin as written
# (config.go:655-660, compatibility.go:347-349), i.e. PyPI's wheel.
NEWEST_TORCH_COG_KNOWS = (2, 9, 1)


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / CONFIG["build"]["python_requirements"]).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_only_keys_cog_knows():
    assert set(CONFIG) <= TOP_LEVEL_KEYS, set(CONFIG) - TOP_LEVEL_KEYS
    assert set(CONFIG["build"]) <= BUILD_KEYS, set(CONFIG["build"]) - BUILD_KEYS
    assert "python_version" in CONFIG["build"]  # required (config_schema_v1.0.json line 158)
    assert all(ENVIRONMENT_ENTRY.match(entry) for entry in CONFIG.get("environment") or []), CONFIG[
        "environment"
    ]


def test_the_image_runs_the_python_the_tests_run():
    assert isinstance(CONFIG["build"]["python_version"], str)  # YAML reads 3.10 as the number 3.1
    assert CONFIG["build"]["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_every_runtime_requirement_is_pinned():
    """An unpinned line is installed as whatever is newest at build time."""
    pins = requirement_pins()
    assert pins and all(version for version in pins.values()), pins
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, name  # what the tests ran


def test_the_torch_pin_has_a_cuda_cog_can_build():
    torch_pin = tuple(int(part) for part in requirement_pins()["torch"].split("."))
    cuda = CONFIG["build"].get("cuda")
    if torch_pin > NEWEST_TORCH_COG_KNOWS:
        assert cuda, "Cog cannot pick a CUDA for this torch: set build.cuda"
    if cuda is not None:
        # config.go:569-589: a string "major.minor", major at least 11; and a base image for it.
        assert (
            isinstance(cuda, str)
            and re.fullmatch(r"\d+\.\d+", cuda)
            and int(cuda.split(".")[0]) >= 11
        ), cuda
        assert cuda in CUDA_BASE_IMAGES, cuda
        import torch

        # The CUDA the pinned wheel was built for, as the tests' own torch reports it.
        assert torch.version.cuda is not None and torch.version.cuda.split(".")[:2] == cuda.split(
            "."
        ), torch.version.cuda


def test_the_image_gets_the_cog_sdk_the_tests_ran():
    assert CONFIG["build"]["sdk_version"] == importlib.metadata.version("cog")


def test_run_names_a_runner_class_in_predict_py():
    module, _, name = CONFIG["run"].partition(":")
    assert (REPO / module).is_file()
    import predict

    runner = getattr(predict, name)
    assert inspect.isclass(runner) and issubclass(runner, BaseRunner) and callable(runner.run)


def test_a_gpu_that_torch_cannot_use_stops_setup_naming_the_driver(tmp_path):
    """build.cuda 13.0 needs driver >= 580: on an older host torch sees no GPU, and the model would
    otherwise load on the CPU and serve minutes-long predictions."""
    import pytest
    import torch

    from pipelines.common import require_usable_gpu

    if torch.cuda.is_available():
        pytest.skip("torch can use a GPU on this host: the refusal cannot happen")
    require_usable_gpu(
        tmp_path / "no-driver"
    )  # a machine without an NVIDIA driver: the CPU is fine
    driver = tmp_path / "version"
    driver.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"
    )
    with pytest.raises(
        RuntimeError,
        match=r"driver is loaded \(NVRM version: .*550\.54\.14.*CUDA 13\.0 needs driver 580",
    ):
        require_usable_gpu(driver)
