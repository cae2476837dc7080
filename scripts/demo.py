"""The main job: start Cog's real server, send one prediction per tier (2, 3, 4), write the videos.

    bash scripts/demo.sh [--prompt "..."]

Uses the real weights when $WEIGHTS_DIR (default ./weights) holds them; otherwise writes tiny
random weights to .cache/tiny-weights, says so, and renders a small clip (the video is noise,
but it goes through every step the real model does: server, setup, inputs, denoising, encoding).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipelines.inputs import TIERS
from scripts import REPO
from scripts.cog_schema import openapi_schema
from scripts.cog_server import CogServer, decode_data_uri
from scripts.make_tiny_weights import make_tiny_weights
from weights import WEIGHTS_DIR_ENV, missing_files, tiny_weights_info, weights_dir

TINY_WEIGHTS_DIR = REPO / ".cache" / "tiny-weights"
# On tiny weights: small enough to finish in seconds on a laptop CPU (real weights: the defaults).
TINY_SETTINGS = {
    2: dict(width=128, height=128, num_frames=16, num_inference_steps=4),
    3: dict(width=256, height=144, num_frames=25, num_inference_steps=4),
    4: dict(width=256, height=160, num_frames=25, num_inference_steps=4),  # multiples of 32, 4k+1
}


def choose_weights() -> tuple[Path, bool]:
    """(weights directory, whether it holds tiny random weights)."""
    configured = weights_dir()
    if not missing_files(configured):
        return configured, tiny_weights_info(configured) is not None
    print(f"No complete real weights in {configured} (set {WEIGHTS_DIR_ENV} to use yours).")
    print(f"Using TINY RANDOM weights from {TINY_WEIGHTS_DIR}: the video will be noise.")
    if missing_files(TINY_WEIGHTS_DIR):
        make_tiny_weights(TINY_WEIGHTS_DIR)
    return TINY_WEIGHTS_DIR, True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--prompt", default="a red fox running through fresh snow at sunrise, cinematic"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", type=Path, default=REPO / "outputs")
    args = parser.parse_args()

    directory, tiny = choose_weights()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    # Served as Replicate serves it: with the schema `cog build` writes for predict.py.
    server = CogServer(
        directory, args.output_dir / "cog-server.log", schema=openapi_schema(REPO / "predict.py")
    )
    try:
        started = time.monotonic()
        server.wait_until_ready(timeout=1800)
        print(f"Cog server READY on {server.url} after {time.monotonic() - started:.1f}s")
        for tier in TIERS:
            inputs = dict(
                tier=tier,
                prompt=args.prompt,
                seed=args.seed,
                **(TINY_SETTINGS[tier] if tiny else {}),
            )
            write_prediction(server, inputs, args.output_dir / f"tier{tier}.mp4", tiny)
    finally:
        server.stop()


def write_prediction(server: CogServer, inputs: dict, path: Path, tiny: bool) -> None:
    started = time.monotonic()
    result = server.predict(inputs, timeout=3600)
    if result["status"] != "succeeded":
        sys.exit(f"Tier {inputs['tier']} prediction {result['status']}: {result.get('error')}")
    path.write_bytes(decode_data_uri(result["output"])[1])
    seed_line = next(line for line in result["logs"].splitlines() if line.startswith("Seed:"))
    print(f"Tier {inputs['tier']} prediction took {time.monotonic() - started:.1f}s; {seed_line}")
    print(f"Video written to {path}{' (tiny random weights: noise)' if tiny else ''}")


if __name__ == "__main__":
    main()
