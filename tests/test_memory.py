"""The worker's malloc arenas: the image sets MALLOC_ARENA_MAX=1 (cog.yaml), so every thread Cog's
worker runs a prediction on shares one arena instead of growing one of its own. Checked where it
matters: in Cog's worker, the process that runs the predictions, started by Cog's server with
cog.yaml's environment as the image has it, after predictions of both tiers."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from scripts.cog_server import CogServer, image_environment
from tests.support import REPO

# glibc gives each arena but the main one a heap of its own: an mmap of HEAP_MAX_SIZE (64 MiB on
# 64-bit, twice the largest mmap threshold) aligned to that size, its used part read-write and the
# rest reserved without access. The main arena lives in the program's break ([heap]).
HEAP_MAX_SIZE = 64 << 20
QUICK = dict(
    prompt="a lighthouse at dusk", width=64, height=64, num_frames=8, num_inference_steps=1
)


def arena_heaps(pid: int) -> list[str]:
    """The heaps of the arenas beyond the main one in a running process, read from its memory
    map, each as "start-end permissions"."""
    regions = []  # (start, end, permissions) of each anonymous mapping, in address order
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) == 5:  # no path: not a file, nor [heap] or [stack]
            start, end = (int(address, 16) for address in fields[0].split("-"))
            regions.append((start, end, fields[1]))
    heaps = []
    for index, (start, end, permissions) in enumerate(regions):
        if start % HEAP_MAX_SIZE or not permissions.startswith("rw"):
            continue
        following = regions[index + 1] if index + 1 < len(regions) else None
        if following and following[0] == end and following[2].startswith("---"):
            end = following[1]  # the reserved rest of the heap
        if end - start == HEAP_MAX_SIZE:
            heaps.append(f"{start:x}-{end:x} {permissions}")
    return heaps


def worker_after_predictions(cog: CogServer) -> tuple[str | None, int]:
    """Cog's worker after predictions of both tiers (each on a thread Cog picks): the
    MALLOC_ARENA_MAX it runs with, and how many arenas it grew beyond the main one."""
    for inputs in (QUICK, dict(QUICK, tier=3), QUICK):
        assert cog.predict(inputs)["status"] == "succeeded"
    [worker] = cog.worker_pids()
    environment = Path(f"/proc/{worker}/environ").read_bytes().decode().split("\0")
    setting = next(
        (entry.partition("=")[2] for entry in environment if entry.startswith("MALLOC_ARENA_MAX=")),
        None,
    )
    return setting, arena_heaps(worker)


def test_the_image_keeps_every_thread_of_the_worker_in_one_arena(server):
    """On the shared server, which runs with the image's environment as every test's does, after
    whatever predictions earlier tests sent it."""
    # cog.yaml's `environment`, which Cog writes into the image as ENV, in the KEY=VALUE form its
    # config parser accepts.
    entries = yaml.safe_load((REPO / "cog.yaml").read_text())["environment"]
    assert all(
        isinstance(entry, str) and "=" in entry and entry.split("=", 1)[0] for entry in entries
    )
    assert image_environment()["MALLOC_ARENA_MAX"] == "1"
    setting, heaps = worker_after_predictions(server)
    assert setting == "1"  # Cog's server hands it on to the worker
    assert heaps == [], f"heaps beyond the main arena's: {heaps}"  # the main arena alone


def test_without_the_limit_the_worker_grows_arenas_of_its_own(tiny_weights_dir, tmp_path):
    # glibc's own limit, 8 per core: what the worker would have without the image's setting.
    # Tiers 2 and 3 alone: the predictions it sends.
    unlimited = {"MALLOC_ARENA_MAX": str(8 * os.cpu_count()), "LOADED_TIERS": "2,3"}
    cog = CogServer(tiny_weights_dir, tmp_path / "server.log", extra_env=unlimited)
    try:
        cog.wait_until_ready()
        _, heaps = worker_after_predictions(cog)
    finally:
        cog.stop()
    assert len(heaps) >= 2  # what the image's setting prevents, and proof the count sees arenas
