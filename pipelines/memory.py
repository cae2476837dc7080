"""The worker's host memory over many predictions: glibc's malloc, tuned from inside the process.

Cog's worker runs each prediction on whichever thread its runtime hands out. glibc gives threads
their own malloc arenas (up to 8 per core) and each keeps its own fragmented high-water mark, so
without these calls the worker's resident memory creeps up over a long run of mixed requests
(scripts/reliability.py --soak measures it; README "Memory over time").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if ctypes.util.find_library("c") else None


_M_ARENA_MAX = -8  # mallopt parameter number, from glibc's malloc.h


def limit_malloc_arenas() -> None:
    """MALLOC_ARENA_MAX=1 from inside the process: no new arena after this call (those that exist
    stay). cog.yaml has no key for the container's environment, so predict.py calls this when the
    worker imports it, before torch starts its threads. An explicit MALLOC_ARENA_MAX wins."""
    if _LIBC is not None and hasattr(_LIBC, "mallopt") and "MALLOC_ARENA_MAX" not in os.environ:
        _LIBC.mallopt(_M_ARENA_MAX, 1)


def release_freed_heap() -> None:
    """Hand memory that Python and torch freed back to the OS after each prediction. glibc keeps
    freed pages in its malloc arenas; this trims what it can (see README "Memory over time" and
    scripts/reliability.py's soak for what remains)."""
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
