r"""One progress bar over a whole prediction, printed as the lines Replicate's clients read.

Replicate's official clients turn the last log line matching
`^\s*(\d+)%\s*\|.+?\|\s*(\d+)\/(\d+)` into a percentage. Each update is printed on its own line
(no carriage returns, which log capture would otherwise merge), formatted by tqdm itself, with the
current stage after the counts: ` 37%|███▋      | 37/100 [00:01<00:02, 25.0it/s, denoising]`.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    """`done` counts every unit reported, past `total` too, so a stage that reports more units than
    its tier announced shows in tests (tests/test_tiers.py); the printed bar stops at `total`, so
    the percentage a client reads never passes 100 %."""

    def __init__(self, total: int, stream=None):
        self.total = total
        self.done = 0
        self._stream = stream or sys.stdout
        self._started = time.monotonic()

    def advance(self, stage: str, units: int = 1) -> None:
        self.done += units
        line = tqdm.format_meter(
            min(self.done, self.total),
            self.total,
            time.monotonic() - self._started,
            postfix=stage,
            ncols=None,
        )
        print(line, file=self._stream, flush=True)

    def step_callback(self, stage: str):
        """A diffusers `callback_on_step_end` that advances the bar once per denoising step."""

        def on_step_end(_pipeline, _step, _timestep, callback_kwargs):
            self.advance(stage)
            return callback_kwargs

        return on_step_end
