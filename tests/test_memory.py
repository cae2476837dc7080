"""The worker's malloc arenas: the image sets MALLOC_ARENA_MAX=1 (cog.yaml), so every thread Cog's
worker runs a prediction on shares one arena instead of growing one of its own."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from tests.support import REPO
from tests.support.cog_server import image_environment

# Import predict (as Cog's worker does), let 8 threads allocate at once (without a limit each new
# thread gets an arena of its own), then count the arenas with glibc's malloc_info. The child
# finds predict.py through PYTHONPATH (arenas()).
COUNT_ARENAS = """
import ctypes, ctypes.util, re, tempfile, threading
import predict  # noqa: F401

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
together = threading.Barrier(8)

def allocate():
    blocks = [bytearray(1 << 16) for _ in range(16)]
    together.wait()

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with tempfile.NamedTemporaryFile(suffix=".xml") as report:
    handle = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, handle)
    libc.fclose(handle)
    print(len(re.findall(r"<heap nr=", open(report.name).read())))
"""


def arenas(environment: dict[str, str]) -> int:
    inherited = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    inherited["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
    )
    result = subprocess.run(
        [sys.executable, "-c", COUNT_ARENAS],
        cwd=REPO,
        env={**inherited, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.strip().splitlines()[-1])


def test_the_image_keeps_every_thread_in_one_arena():
    # cog.yaml's `environment`, which Cog writes into the image as ENV, in the KEY=VALUE form its
    # config parser accepts.
    entries = yaml.safe_load((REPO / "cog.yaml").read_text())["environment"]
    assert all(
        isinstance(entry, str) and "=" in entry and entry.split("=", 1)[0] for entry in entries
    )
    assert image_environment()["MALLOC_ARENA_MAX"] == "1"
    assert arenas(image_environment()) == 1


def test_without_the_limit_each_thread_grows_an_arena_of_its_own():
    assert arenas({}) >= 9  # the main arena and one per thread: what the image's setting prevents
