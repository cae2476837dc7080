"""How well film-rate playback rebuilds frames: drop every other frame of a clip with real motion,
make them again from their neighbours, and compare with the dropped ones (PSNR, dB).

    python -m bench.interpolation_quality            # prints the Markdown table the README quotes

The clips are synthetic, rendered here at 320×192 and 24 fps so the truth between two frames is
known: a procedural scene (several octaves of smooth noise, with hard-edged discs and bars for
edges) seen through a camera that pans; a textured ball crossing the still scene; two balls
crossing each other (one hides the other); and a cut half way, from one pan to another scene.
Each clip keeps frames 0, 2, 4, ... (12 fps), rebuilds frames 1, 3, 5, ... at 24 fps with
`pipelines.interpolation.interpolate` (what a prediction with interpolate_to_fps runs), and
compares every rebuilt frame with the one dropped. Frame repetition (showing each kept frame
twice) is the baseline; ffmpeg's plain blend of the two neighbours and minterpolate at ffmpeg's
own default settings are shown for comparison.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from pipelines import interpolation

WIDTH, HEIGHT, FRAMES, FPS = 320, 192, 49, 24
SEED = 13
METHODS = {
    "minterpolate, as used (pipelines/interpolation.py)": interpolation.MINTERPOLATE,
    "minterpolate, ffmpeg's defaults (mci, obmc, bilateral)": "minterpolate=fps={fps}",
    "blend of the two neighbours (minterpolate mi_mode=blend)": (
        "minterpolate=fps={fps}:mi_mode=blend:scd=fdiff"
    ),
}
REPETITION = "frame repetition (each kept frame shown twice)"


def scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A detailed still image: smooth noise at several scales, coloured, with hard-edged shapes."""
    image = np.zeros((height, width, 3))
    for cells, weight in ((4, 0.5), (12, 0.3), (40, 0.2)):
        coarse = rng.random((cells + 1, max(2, cells * width // height) + 1, 3))
        rows = np.linspace(0, coarse.shape[0] - 1, height)
        cols = np.linspace(0, coarse.shape[1] - 1, width)
        image += weight * _bilinear(coarse, rows, cols)
    y, x = np.mgrid[0:height, 0:width]
    for _ in range(height * width // 6000):
        cy, cx, radius = rng.integers(0, height), rng.integers(0, width), rng.integers(6, 24)
        image[(y - cy) ** 2 + (x - cx) ** 2 < radius**2] = rng.random(3)
    for _ in range(height * width // 12000):
        top, left = rng.integers(0, height - 10), rng.integers(0, width - 40)
        image[top : top + rng.integers(4, 10), left : left + rng.integers(20, 40)] = rng.random(3)
    return image


def _bilinear(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    r1, c1 = np.minimum(r0 + 1, grid.shape[0] - 1), np.minimum(c0 + 1, grid.shape[1] - 1)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    top = grid[r0][:, c0] * (1 - fc) + grid[r0][:, c1] * fc
    bottom = grid[r1][:, c0] * (1 - fc) + grid[r1][:, c1] * fc
    return top * (1 - fr) + bottom * fr


def ball(rng: np.random.Generator, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured disc: its pixels and its mask."""
    texture = scene(rng, 2 * radius, 2 * radius)
    y, x = np.mgrid[0 : 2 * radius, 0 : 2 * radius]
    return texture, (y - radius + 0.5) ** 2 + (x - radius + 0.5) ** 2 < radius**2


def to_frames(images) -> np.ndarray:
    return (np.clip(np.stack(images), 0, 1) * 255).round().astype(np.uint8)


def pan(rng: np.random.Generator, frames: int = FRAMES, step=(1, 3)) -> np.ndarray:
    """A camera moving across a larger scene, `step` (down, right) pixels per frame."""
    world = scene(rng, HEIGHT + step[0] * frames, WIDTH + step[1] * frames)
    return to_frames(
        [
            world[k * step[0] : k * step[0] + HEIGHT, k * step[1] : k * step[1] + WIDTH]
            for k in range(frames)
        ]
    )


def moving_balls(rng: np.random.Generator, paths) -> np.ndarray:
    """Textured balls over the still scene; `paths`: (radius, start (y, x), velocity (y, x))
    each."""
    background = scene(rng, HEIGHT, WIDTH)
    sprites = [(ball(rng, radius), start, velocity) for radius, start, velocity in paths]
    images = []
    for k in range(FRAMES):
        image = background.copy()
        for (texture, mask), (y0, x0), (vy, vx) in sprites:
            top, left = round(y0 + vy * k), round(x0 + vx * k)
            region = image[top : top + mask.shape[0], left : left + mask.shape[1]]
            region[mask[: region.shape[0], : region.shape[1]]] = texture[
                : region.shape[0], : region.shape[1]
            ][mask[: region.shape[0], : region.shape[1]]]
        images.append(image)
    return to_frames(images)


def clips(seed: int = SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    first, second = pan(rng, FRAMES // 2 + 1), pan(rng, FRAMES - FRAMES // 2 - 1, step=(2, 1))
    return {
        "camera pan, 3 px right and 1 down per frame": pan(rng),
        "a ball (r=28) crossing the still scene, 5 px per frame": moving_balls(
            rng, [(28, (60, 10), (1, 5))]
        ),
        "two balls crossing, one passing behind the other": moving_balls(
            rng, [(30, (20, 10), (2, 5)), (22, (120, 260), (-1.5, -4.5))]
        ),
        "a cut half way, from one pan to another": np.concatenate([first, second]),
    }


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def rebuilt(clip: np.ndarray, method: str) -> np.ndarray:
    """Frames 1, 3, 5, ... of `clip` made from frames 0, 2, 4, ... by `method`."""
    kept = clip[0::2]
    if method == REPETITION:
        return kept[: len(clip) // 2]
    saved, interpolation.MINTERPOLATE = interpolation.MINTERPOLATE, METHODS[method]
    try:
        played = list(interpolation.interpolate(kept, FPS // 2, FPS))
    finally:
        interpolation.MINTERPOLATE = saved
    return np.stack(played[1::2][: len(clip) // 2])


def quality(clip: np.ndarray, method: str) -> float:
    """Mean PSNR of the rebuilt frames against the dropped ones."""
    dropped = clip[1::2]
    return float(
        np.mean([psnr(made, truth) for made, truth in zip(rebuilt(clip, method), dropped)])
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    methods = [*METHODS, REPETITION]
    rows = ["| clip | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for name, clip in clips().items():
        rows.append(
            f"| {name} | " + " | ".join(f"{quality(clip, method):.1f}" for method in methods) + " |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
