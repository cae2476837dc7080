"""What `cog build` would copy into the image: the project folder less what .dockerignore excludes.

Cog's build runs `COPY . /src` and leaves out only `.cog/` by itself; everything else is up to
.dockerignore. The context is listed with the Docker SDK's own .dockerignore matcher
(`docker.utils.build.exclude_paths`, what `docker build` from Python applies), over a copy of the
project's files plus the junk a working checkout holds.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

from tests.support import REPO

# What a checkout accumulates: environments, caches, outputs, a half-done download, real weights.
JUNK = [
    ".git/HEAD",
    ".venv/bin/python",
    ".venv/lib/python3.11/site-packages/torch/__init__.py",
    ".cache/tiny-weights/stable-diffusion-v1-5/model_index.json",
    ".pytest_cache/README.md",
    ".hypothesis/examples/abc",
    ".whl/torch.whl",
    "outputs/tier2.mp4",
    "outputs/cog-server.log",
    "pipelines/__pycache__/tier2.cpython-311.pyc",
    "__pycache__/predict.cpython-311.pyc",
    "weights/.partial/stable-diffusion-v1-5/unet/diffusion_pytorch_model.fp16.safetensors",
    "weights.tar",
    ".cog/openapi_schema.json",
]
WEIGHTS = [
    "weights/weights.lock.json",
    "weights/.verified.json",
    "weights/stable-diffusion-v1-5/unet/diffusion_pytorch_model.fp16.safetensors",
    "weights/stable-video-diffusion-img2vid-xt-1-1/model_index.json",
]


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return [name for name in listed.stdout.splitlines() if (REPO / name).is_file()]


def build_context(project: Path, dockerignore: str) -> set[str]:
    """Files `cog build` sends: Docker's matcher over .dockerignore, then Cog's own `.cog` rule."""
    patterns = [
        line.strip()
        for line in dockerignore.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    included = exclude_paths(str(project), [*patterns, ".cog"])
    return {path for path in included if (project / path).is_file()}


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the project's tracked files (the .dockerignore in the working tree included) and
    the junk of a working checkout."""
    project = tmp_path / "project"
    for name in [*tracked_files(), ".dockerignore"]:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, project / name)
    for name in JUNK + WEIGHTS:
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return project


def test_the_image_gets_the_code_config_and_weights(checkout):
    context = build_context(checkout, (checkout / ".dockerignore").read_text())
    needed = {"predict.py", "cog.yaml", "requirements.txt", ".dockerignore"}
    # setup() imports weights.py, weights_lock.py and weights_fetch.py (weights_build.py comes too).
    needed |= {path.name for path in REPO.glob("weights*.py")}
    needed |= {str(path.relative_to(REPO)) for path in (REPO / "pipelines").glob("*.py")}
    assert {"weights.py", "weights_lock.py", "weights_fetch.py"} <= needed
    assert needed <= context, needed - context
    # Weights baked into the image, with the lock and the hashes already checked (no re-hash at
    # boot).
    assert set(WEIGHTS) <= context, set(WEIGHTS) - context


def test_the_image_gets_no_environment_cache_output_history_or_tests(checkout):
    context = build_context(checkout, (checkout / ".dockerignore").read_text())
    assert not set(JUNK) & context, set(JUNK) & context
    left_in = {
        path
        for path in context
        if path.split("/")[0]
        in (".venv", ".git", ".cache", "outputs", "tests", "examples", "bench", "docs", "deploy")
    }
    assert not left_in, sorted(left_in)
    assert not any(path.endswith(".pyc") for path in context)


def test_weights_from_a_cdn_keep_only_the_lock_in_the_image(checkout):
    """docs/PUBLISHING.md "Cold start", route 2: these two lines added to .dockerignore."""
    ignore = (checkout / ".dockerignore").read_text() + "\nweights/*\n!weights/weights.lock.json\n"
    context = build_context(checkout, ignore)
    assert {path for path in context if path.startswith("weights/")} == {
        "weights/weights.lock.json"
    }
    assert "predict.py" in context
