"""Our frames against stock diffusers', with a failure that says where they part.

A bare "arrays are not equal" leaves the reader to bisect the pipeline by hand. A failure from
these helpers says how much differs and in which frames, then checks the suspects the test names
(a stage: does our decoding of stock's latents give stock's frames; an input: do ours equal
stock's with that input left out) and says which account for the difference. Suspects run only
when the frames differ, so a passing test pays nothing for them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import numpy as np
import torch

# A suspect: what it would mean, and a check that is true when it accounts for the difference.
Suspects = Mapping[str, Callable[[], bool]]


def matches(ours, stock, atol: float = 0.0) -> bool:
    ours, stock = np.asarray(ours), np.asarray(stock)
    return ours.shape == stock.shape and bool(
        np.all(np.abs(ours.astype(np.float64) - stock.astype(np.float64)) <= atol)
    )


def difference(ours, stock, atol: float = 0.0) -> str:
    """What differs, in words: the shapes, or how many values by how much, in which frames (the
    first axis)."""
    ours, stock = np.asarray(ours), np.asarray(stock)
    if ours.shape != stock.shape:
        return f"shape {ours.shape}, stock's {stock.shape}"
    gap = np.abs(ours.astype(np.float64) - stock.astype(np.float64))
    apart = gap > atol
    frames = np.flatnonzero(apart.reshape(len(apart), -1).any(axis=1))
    where = f", in frames {_spans(frames)} of {len(apart)}" if len(apart) > 1 else ""
    return (
        f"{np.count_nonzero(apart)} of {apart.size} values differ by more than {atol:g} "
        f"(largest {gap.max():.3g}){where}"
    )


def _spans(numbers: np.ndarray) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0–2, 5, 7–8'."""
    spans = []
    for number in numbers.tolist():
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in spans)


def assert_same_frames(
    ours, stock, what: str, *, atol: float = 0.0, suspects: Suspects | None = None
) -> None:
    """Fail, naming what differs and which of `suspects` account for it, unless every value of
    `ours` is within `atol` of `stock`'s. `what`: whose frames, against what ("tier 2's frames,
    against stock AnimateDiffPipeline's")."""
    if matches(ours, stock, atol):
        return
    message = f"{what}: {difference(ours, stock, atol)}"
    if suspects:
        found = [suspect for suspect, accounts in suspects.items() if accounts()]
        message += (
            "; what accounts for it: " + "; ".join(found)
            if found
            else "; none of these accounts for it: " + "; ".join(suspects)
        )
    raise AssertionError(message)


def stage_suspects(
    earlier_stage: str,
    later_stage: str,
    ours_from_stock_latents: Callable[[], np.ndarray],
    stock,
    atol: float = 0.0,
) -> dict[str, Callable[[], bool]]:
    """Which stage differs: stock's latents put through our `later_stage` (the decoding) either
    give stock's frames, so the difference comes from the `earlier_stage`, or they do not."""
    ours_from_stock = functools.cache(ours_from_stock_latents)
    return {
        f"the {earlier_stage} (stock's latents through our {later_stage} give stock's frames)": (
            lambda: matches(ours_from_stock(), stock, atol)
        ),
        f"the {later_stage} (stock's latents through our {later_stage} do not give stock's "
        "frames)": lambda: not matches(ours_from_stock(), stock, atol),
    }


def dropped_input_suspects(
    ours, stock_without: Mapping[str, Callable[[], np.ndarray]], atol: float = 0.0
) -> dict[str, Callable[[], bool]]:
    """Which input our pipeline fails to pass on: `stock_without` maps each input to stock's
    frames with that input left at stock's default; ours equal one of those when we drop it."""
    return {
        f"{name} does not reach the model (ours equal stock's with {name} left out)": (
            functools.partial(lambda frames: matches(ours, frames(), atol), frames)
        )
        for name, frames in stock_without.items()
    }


def stock_video(pipeline, inputs: Mapping, seed: int):
    """`run(output_type="np", **changed)`: the stock video pipeline's frames for `inputs` and
    `seed`, with `changed` inputs instead; with output_type="latent", its latents."""

    def run(output_type: str = "np", **changed):
        output = pipeline(
            **{**inputs, **changed},
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type=output_type,
        ).frames
        return output if output_type == "latent" else output[0]

    return run
