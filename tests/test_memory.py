"""The worker's malloc arenas: importing predict.py (as Cog's worker does at setup) stops glibc from
giving each new thread an arena of its own; an explicit MALLOC_ARENA_MAX still wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Import predict, let 8 threads allocate at once (each new thread would get its own arena), then
# count the arenas with glibc's malloc_info.
COUNT_ARENAS = """
import ctypes, ctypes.util, re, sys, tempfile, threading
sys.path.insert(0, {repo!r})
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


def arenas(**env) -> int:
    environment = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    result = subprocess.run([sys.executable, "-c", COUNT_ARENAS.format(repo=str(REPO))], cwd=REPO,
                            env={**environment, **env}, capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def test_importing_predict_keeps_new_threads_in_the_existing_arenas():
    assert arenas() == 1


def test_an_explicit_malloc_arena_max_wins():
    assert arenas(MALLOC_ARENA_MAX="64") >= 9  # the main arena and one per thread
