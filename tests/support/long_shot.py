"""A storyboard shot (docs/LONG_SHOTS.md): 96 frames, three segments; and what diffusers' stock
AnimateDiffPipeline makes of it with FreeNoise. Small and one step, to stay cheap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipelines.inputs import VideoRequest, resolve_request

LONG_SHOT = dict(
    tier=2,
    prompt="a man in a red coat",
    negative_prompt="blurry",
    num_frames=96,
    width=64,
    height=64,
    num_inference_steps=1,
    seed=21,
    prompt_schedule="0: he opens the door | 24: he steps inside | 48: he sits down",
)


def long_shot_by_stock_diffusers(weights_dir: Path) -> tuple[VideoRequest, np.ndarray]:
    """LONG_SHOT as a request, and the stock pipeline's frames for it: `enable_free_noise` with its
    defaults (16-frame windows, stride 4), the prompt joined to each segment's text by hand, as a
    dict."""
    from tests.test_tier2_pipeline import stock_pipeline

    stock = stock_pipeline(weights_dir)
    stock.enable_free_noise()
    frames = stock(
        prompt={
            0: "a man in a red coat, he opens the door",
            24: "a man in a red coat, he steps inside",
            48: "a man in a red coat, he sits down",
        },
        negative_prompt="blurry",
        num_frames=96,
        height=64,
        width=64,
        num_inference_steps=1,
        guidance_scale=7.5,
        generator=torch.Generator("cpu").manual_seed(21),
        output_type="np",
    ).frames[0]
    return resolve_request(LONG_SHOT), frames
