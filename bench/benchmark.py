"""Speed and memory of each tier, ours against diffusers' stock pipelines, on one device in one run.

    # GPU: full-size models, production defaults
    python -m bench.benchmark --out bench/reports
    # CPU: tiny weights, tiny sizes (CI)
    python -m bench.benchmark --smoke --out /tmp/bench
    # any machine: tier 2's FLOPs per video, standard and draft
    python -m bench.benchmark --flops --out /tmp/flops

On a GPU it builds the full-size architectures from bench/model_configs.json with random weights
(timings and memory do not depend on weight values), saves them once in the production layout
(`--weights-dir`, default .cache/full-size-weights) and loads them through the production loaders,
so setup is a real load from local disk. For each tier it times (b) our pipeline and then (a) the
stock diffusers pipelines as a peer would deploy them (fp16, default attention, `.to("cuda")`), with
the same weights, inputs and seed, and compares their frames. It writes benchmark.json and
benchmark.md (with the date and machine) to --out and prints the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import gc
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pipelines.common import Device, pick_device
from pipelines.images import fit_to_size
from pipelines.inputs import TIERS, VideoRequest, resolve_request
from pipelines.progress import Progress
from pipelines.tier2 import SCHEDULER_OVERRIDES
from pipelines.tier3 import SVD_VAE_DECODE_FRAMES, keyframe_size
from pipelines.tier4 import wan_dtype
from pipelines.tiers import Tier, load_tiers, progress_total
from pipelines.video import to_uint8, write_video
from scripts import REPO
from scripts.make_tiny_weights import CLIP_TOKEN_IDS, make_tiny_weights, write_weights
from weights import WEIGHT_SETS, required_files
from weights_build import write_lock
from weights_lock import VERIFIED_CACHE, verify_weights

CONFIGS = REPO / "bench" / "model_configs.json"  # copy of the real repos' config.json values
H100_DOLLARS_PER_SECOND = 0.001525  # Replicate's H100 price
PROMPT = "a red fox running through fresh snow at sunrise, cinematic"
SMOKE_SIZES = {
    2: dict(width=64, height=64, num_frames=8, num_inference_steps=2),
    3: dict(width=128, height=64, num_frames=8, num_inference_steps=2),
    4: dict(width=64, height=64, num_frames=9, num_inference_steps=2),
}
# The tiers the full-size run builds weights for: every tier, so that setup loads what a
# container of every tier loads.
FULL_SIZE_TIERS = (2, 3, 4)
# A tier-4 video at its defaults (50 steps with guidance) would take the GPU check's whole budget:
# bench/reports/COST.md's floor is 55 s at 100 % of an H100's peak, and ours and stock run twice
# each. The full-size run times tier 4 at this many steps and states the defaults' time from the
# seconds per step it measured.
TIER4_GPU_STEPS = 2
# The tiers with a draft mode; the full-size run times each draft at its fixed recipe (ours alone:
# no stock pipeline runs it).
DRAFT_TIERS = (2, 4)


class StageTimer(Progress):
    """Progress that also adds up wall time per stage (synchronising the GPU at each step)."""

    def __init__(self, total: int, device: Device):
        super().__init__(total, stream=io.StringIO())
        self.device, self.seconds, self._last = device, {}, time.perf_counter()

    def advance(self, stage: str, units: int = 1) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now
        super().advance(stage, units)


def synchronize(device: Device) -> None:
    if device.is_gpu:
        torch.cuda.synchronize()


# Each weight set's components and the bench/model_configs.json entry each is built from.
FULL_SIZE_SETS = {
    "sd15": {
        "unet": "sd15_unet",
        "vae": "sd15_vae",
        "text_encoder": "sd15_text_encoder",
        "safety_checker": "sd15_safety_checker",
    },
    "animatediff": {"adapter": "animatediff_v3_motion_adapter"},
    # SDXL's first encoder is the same CLIP ViT-L as SD 1.5's (same config, same seed below).
    "sdxl": {
        "unet": "sdxl_unet",
        "text_encoder": "sdxl_text_encoder",
        "text_encoder_2": "sdxl_text_encoder_2",
        "fp16_fix_vae": "sdxl_vae_fp16_fix",
    },
    "svd": {
        "unet": "svd_xt_1_1_unet",
        "vae": "svd_xt_1_1_vae",
        "image_encoder": "svd_xt_1_1_image_encoder",
    },
}


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """Build parameters directly in `dtype`: in fp32 first, SDXL's UNet alone would take 10 GB."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_full_size_model(key: str, device: Device) -> torch.nn.Module:
    """One model from its real config, random weights (seeded, so two builds of one config are the
    same model, as SD 1.5's and SDXL's CLIP ViT-L are), in `device.dtype` on `device`."""
    import diffusers
    import transformers

    entry = json.loads(CONFIGS.read_text())[key]
    module_name, class_name = entry["class"].split(".")
    torch.manual_seed(0)
    if (
        class_name == "StableDiffusionSafetyChecker"
    ):  # not at diffusers' top level; takes a CLIPConfig
        from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

        with torch.device(device.torch_device), default_dtype(device.dtype):
            return StableDiffusionSafetyChecker(transformers.CLIPConfig(**entry["config"]))
    cls = getattr({"diffusers": diffusers, "transformers": transformers}[module_name], class_name)
    with torch.device(device.torch_device), default_dtype(device.dtype):
        if module_name == "transformers":
            config_class = getattr(
                transformers,
                class_name.replace("ModelWithProjection", "Config").replace("Model", "Config"),
            )
            # The published token ids (not architecture, so not in model_configs.json): CLIP pools
            # its text output the way the real configs make it.
            token_ids = CLIP_TOKEN_IDS if "Text" in class_name else {}
            return cls(config_class(**{**token_ids, **entry["config"]}))
        return cls(**entry["config"])


def build_full_size_set(name: str, device: Device, built: dict | None = None) -> dict:
    """The models of one weight set (FULL_SIZE_SETS); `built` passes ones already built to share."""
    built = built or {}
    return {
        part: built.get(part) or build_full_size_model(key, device)
        for part, key in FULL_SIZE_SETS[name].items()
    }


FULL_SIZE_MARKER = "FULL_SIZE_RANDOM_WEIGHTS"


def ensure_full_size_weights(weights_dir: Path, device: Device) -> None:
    """The full-size random weights of every tier in the production layout, written once:
    bench/gpu_check.py and bench/lever_matrix.py run on the ones this program wrote."""
    marker = weights_dir / FULL_SIZE_MARKER
    if marker.is_file() and marker.read_text() == full_size_marker_text():
        return
    write_weights(weights_dir, build_every_full_size_model(device))
    write_lock(weights_dir)  # pinned like real weights, so setup's verification is measured too
    marker.write_text(full_size_marker_text())
    free_memory(device)


def full_size_marker_text() -> str:
    # The tiers named: weights an earlier version wrote for fewer tiers are written again.
    return f"random weights, real architectures, tiers {FULL_SIZE_TIERS}\n"


def build_every_full_size_model(device: Device) -> dict:
    """What ensure_full_size_weights writes, by weight set: build_full_size_models' and tier 4's
    (bench/cost.py builds those from the same configs). Tier 4's draft transformer is the standard
    one: FastWan is a fine-tune of that architecture, so one random model stands for both and its
    files are linked rather than written twice (scripts/tiny_wan.py)."""
    from bench.cost import build_tier4_models

    wan = build_tier4_models(device)
    return {
        **build_full_size_models(device),
        "wan22_ti2v": {**wan, "draft_transformer": wan["transformer"]},
    }


def build_full_size_models(device: Device) -> dict:
    """Every model from its real config, random weights, in `device.dtype`; one CLIP ViT-L object
    serves SD 1.5 and SDXL, as setup() shares it."""
    sd15 = build_full_size_set("sd15", device)
    return {
        "sd15": sd15,
        "animatediff": build_full_size_set("animatediff", device),
        "sdxl": build_full_size_set("sdxl", device, {"text_encoder": sd15["text_encoder"]}),
        "svd": build_full_size_set("svd", device),
    }


# Compute-bound price, counted not timed (no GPU timed these): flops.md's measured H100 bf16
# matmul rate, at 100 % of it (the floor) and at 50 % (what well-tuned diffusion inference reaches).
H100_MATMUL_TFLOPS = 790.0


def count_tier2_flops_per_video() -> dict:
    """FLOPs of one tier-2 video at the production defaults, standard and draft, counted with
    FlopCounterMode on the full-size architectures built on the meta device (no memory, no
    weights): the text encoder, every UNet pass and the VAE decode. Standard: 25 steps with
    classifier-free guidance (2 prompts, a batch of 2 per step); draft: AnimateDiff-Lightning's
    4 steps at guidance 1 (1 prompt, a batch of 1), with the Lightning motion modules (v2's
    mid-block module included) in the same UNet. Attention runs through SDPA's math kernel, so
    it is counted as the matmuls it is (flops.md counts it the same way)."""
    from diffusers import MotionAdapter, UNetMotionModel
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from pipelines.draft import DRAFT_GUIDANCE, DRAFT_STEPS, MotionModules

    meta = Device(torch.device("meta"), torch.float16)
    models = build_full_size_models(meta)
    sd15, adapter = models["sd15"], models["animatediff"]["adapter"]
    with torch.device("meta"):
        unet = UNetMotionModel.from_unet2d(sd15["unet"], adapter).to(torch.float16)
        lightning_adapter = MotionAdapter.from_config(
            {**adapter.config, "use_motion_mid_block": True}
        ).to(torch.float16)
    standard_modules = MotionModules.installed_in(unet)
    lightning_modules = MotionModules.around(unet, lightning_adapter)
    defaults = resolve_request(dict(tier=2, prompt=PROMPT, seed=0))
    frames, latent = defaults.num_frames, defaults.height // 8
    tokens = sd15["text_encoder"].config.max_position_embeddings

    def counted(function) -> int:
        with (
            sdpa_kernel(SDPBackend.MATH),
            FlopCounterMode(display=False) as counter,
            torch.no_grad(),
        ):
            function()
        return counter.get_total_flops()

    def unet_pass(batch: int) -> int:
        sample = torch.zeros(batch, 4, frames, latent, latent, device="meta", dtype=torch.float16)
        # AnimateDiffPipeline repeats the prompt's embedding for every frame before the UNet.
        text = torch.zeros(
            batch * frames,
            tokens,
            unet.config.cross_attention_dim,
            device="meta",
            dtype=torch.float16,
        )
        return counted(
            lambda: unet(sample, torch.tensor(999, device="meta"), encoder_hidden_states=text)
        )

    def text_encoder(prompts: int) -> int:
        ids = torch.zeros(prompts, tokens, dtype=torch.long, device="meta")
        return counted(lambda: sd15["text_encoder"](ids))

    vae = sd15["vae"]
    latents = torch.zeros(frames, 4, latent, latent, device="meta", dtype=torch.float16)
    decode = counted(lambda: vae.decode(latents))

    standard_step = unet_pass(batch=2)
    lightning_modules.install(unet)
    draft_step = unet_pass(batch=1)
    standard_modules.install(unet)
    modes = {
        "standard": dict(
            steps=defaults.num_inference_steps,
            guidance=defaults.guidance_scale,
            text_encoder=text_encoder(2),
            unet_step=standard_step,
        ),
        "draft": dict(
            steps=DRAFT_STEPS,
            guidance=DRAFT_GUIDANCE,
            text_encoder=text_encoder(1),
            unet_step=draft_step,
        ),
    }
    for mode in modes.values():
        mode["vae_decode"] = decode
        mode["total"] = mode["text_encoder"] + mode["steps"] * mode["unet_step"] + decode
        floor_seconds = mode["total"] / 1e12 / H100_MATMUL_TFLOPS
        mode["h100_floor_dollars"] = floor_seconds * H100_DOLLARS_PER_SECOND
        mode["h100_half_peak_dollars"] = 2 * floor_seconds * H100_DOLLARS_PER_SECOND
    return dict(
        settings=f"{frames} frames {defaults.width}×{defaults.height}",
        modes=modes,
        ratio=modes["standard"]["total"] / modes["draft"]["total"],
    )


def flops_table(counted: dict) -> str:
    lines = [
        f"Tier 2 per video at the defaults ({counted['settings']}), counted with FlopCounterMode "
        f"on the meta device; price = FLOPs at {H100_MATMUL_TFLOPS:.0f} TFLOP/s (floor) or half "
        "of it, "
        f"× ${H100_DOLLARS_PER_SECOND}/s:",
        "",
        "| mode | steps × UNet batch | TFLOP per UNet step | text encoder | VAE decode "
        "| TFLOP per video | $ per video at the floor | at 50 % of peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, mode in counted["modes"].items():
        batch = 2 if mode["guidance"] > 1 else 1
        lines.append(
            f"| {name} | {mode['steps']} × {batch} | {mode['unet_step'] / 1e12:.2f} | "
            f"{mode['text_encoder'] / 1e12:.3f} | {mode['vae_decode'] / 1e12:.1f} | "
            f"{mode['total'] / 1e12:.0f} | "
            f"{mode['h100_floor_dollars']:.5f} | {mode['h100_half_peak_dollars']:.5f} |"
        )
    lines += ["", f"Standard / draft: {counted['ratio']:.1f}× the FLOPs."]
    return "\n".join(lines)


def stock_tier2(weights_dir: Path, device: Device):
    from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter

    sd15 = WEIGHT_SETS["sd15"].path(weights_dir)
    adapter = MotionAdapter.from_pretrained(
        WEIGHT_SETS["animatediff"].path(weights_dir), dtype=device.dtype
    )
    scheduler = DDIMScheduler.from_pretrained(sd15, subfolder="scheduler", **SCHEDULER_OVERRIDES)
    # SD 1.5's model_index.json names a feature_extractor (the safety checker's) that the weights
    # manifest leaves out; text-to-video never uses it, so the stock pipeline goes without it too.
    pipeline = AnimateDiffPipeline.from_pretrained(
        sd15,
        motion_adapter=adapter,
        scheduler=scheduler,
        feature_extractor=None,
        image_encoder=None,
        variant="fp16",
        dtype=device.dtype,
    ).to(device.torch_device)
    pipeline.set_progress_bar_config(disable=True)
    return stock_text_to_video(pipeline)


def stock_text_to_video(pipeline, *also: str):
    """A stock text-to-video pipeline called as its documentation does: the request's prompt,
    frames, size, steps and guidance, the seed on a CPU generator, frames out as numpy; `also`
    names further request fields it takes as they are (tier 4's negative_prompt)."""

    def run(request):
        return pipeline(
            prompt=request.prompt,
            num_frames=request.num_frames,
            height=request.height,
            width=request.width,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            output_type="np",
            generator=torch.Generator("cpu").manual_seed(request.seed),
            **{name: getattr(request, name) for name in also},
        ).frames[0]

    return run


def stock_tier3(weights_dir: Path, device: Device):
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline, StableVideoDiffusionPipeline

    vae = AutoencoderKL.from_pretrained(
        WEIGHT_SETS["sdxl_vae"].path(weights_dir), dtype=device.dtype
    )
    sdxl = StableDiffusionXLPipeline.from_pretrained(
        WEIGHT_SETS["sdxl"].path(weights_dir), vae=vae, variant="fp16", dtype=device.dtype
    ).to(device.torch_device)
    svd = StableVideoDiffusionPipeline.from_pretrained(
        WEIGHT_SETS["svd"].path(weights_dir), variant="fp16", dtype=device.dtype
    ).to(device.torch_device)
    for pipeline in (sdxl, svd):
        pipeline.set_progress_bar_config(disable=True)

    def run(request):
        # The same keyframe rule as ours: SDXL's training size for the aspect ratio, fitted to the
        # video.
        width, height = keyframe_size(
            request.width, request.height, sdxl.default_sample_size * sdxl.vae_scale_factor
        )
        keyframe = sdxl(
            prompt=request.prompt,
            height=height,
            width=width,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            generator=torch.Generator("cpu").manual_seed(request.seed),
        ).images[0]
        keyframe = fit_to_size(keyframe, request.width, request.height)
        return svd(
            image=keyframe,
            height=request.height,
            width=request.width,
            num_frames=request.num_frames,
            num_inference_steps=request.num_inference_steps,
            fps=request.fps,
            motion_bucket_id=request.motion_bucket_id,
            noise_aug_strength=request.noise_aug_strength,
            decode_chunk_size=SVD_VAE_DECODE_FRAMES,
            output_type="np",
            generator=torch.Generator("cpu").manual_seed(request.seed),
        ).frames[0]

    return run


def stock_tier4(weights_dir: Path, device: Device):
    from diffusers import AutoencoderKLWan, WanPipeline

    folder = WEIGHT_SETS["wan22_ti2v"].path(weights_dir)
    # diffusers' WanPipeline example: the VAE in float32, the rest in bfloat16 (in float32 on a
    # CPU smoke run, as ours).
    vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", dtype=torch.float32)
    pipeline = WanPipeline.from_pretrained(folder, vae=vae, dtype=wan_dtype(device))
    pipeline = pipeline.to(device.torch_device)
    pipeline.set_progress_bar_config(disable=True)
    return stock_text_to_video(pipeline, "negative_prompt")


def timed(function, device: Device):
    synchronize(device)
    started = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - started, result


def encode(frames: np.ndarray, request) -> None:
    with tempfile.TemporaryDirectory() as folder:
        write_video(
            to_uint8(frames), Path(folder) / "video.mp4", fps=request.fps, output_format="mp4"
        )


def measure_ours(
    tier: Tier, request: VideoRequest, device: Device, runs: int, warmups: int
) -> dict:
    def one():
        progress = StageTimer(progress_total(tier, request), device)
        frames = tier.generate(request, progress)
        started = time.perf_counter()
        encode(frames, request)
        progress.seconds["encoding"] = time.perf_counter() - started
        return progress.seconds, frames

    from torch.utils.flop_counter import FlopCounterMode

    # The FLOPs are counted during the first warm-up, whose time is not kept (a full run more
    # would cost a tier-4 video's seconds); with no warm-up, in a run of its own.
    with FlopCounterMode(display=False) as counter:
        one()
    for _ in range(warmups - 1):
        one()
    if device.is_gpu:
        torch.cuda.reset_peak_memory_stats()
    samples = [timed(one, device) for _ in range(runs)]
    stages = {
        stage: statistics.median(s[1][0][stage] for s in samples) for stage in samples[0][1][0]
    }
    return dict(
        seconds=statistics.median(s[0] for s in samples),
        stages=stages,
        frames=samples[-1][1][1],
        flops=counter.get_total_flops(),
        peak_vram_gib=torch.cuda.max_memory_allocated() / 2**30 if device.is_gpu else None,
    )


def free_memory(device: Device) -> None:
    """Models dropped are freed now, reference cycles included, and their cached blocks returned:
    every tier of ours (49.9 GB of weights) beside a stock tier 4 (24 GB) would leave an 80 GB card
    little room for a video's activations, so the next load must not find the last one there."""
    gc.collect()
    if device.is_gpu:
        torch.cuda.empty_cache()


def measure_stock(run, request, device: Device, runs: int, warmups: int) -> dict:
    def one():
        frames = run(request)
        encode(frames, request)
        return frames

    for _ in range(warmups):
        one()
    samples = [timed(one, device) for _ in range(runs)]
    return dict(seconds=statistics.median(s[0] for s in samples), frames=samples[-1][1])


def matmul_peak_tflops(device: Device) -> float:
    """The measured dense matmul rate: the ceiling achieved TFLOP/s is compared with."""
    size, dtype = (8192, torch.bfloat16) if device.is_gpu else (512, torch.float32)
    a = torch.randn(size, size, device=device.torch_device, dtype=dtype)
    b = torch.randn(size, size, device=device.torch_device, dtype=dtype)
    a @ b
    seconds, _ = timed(lambda: [a @ b for _ in range(10)], device)
    return 10 * 2 * size**3 / seconds / 1e12


def psnr(ours: np.ndarray, theirs: np.ndarray) -> float:
    mse = float(np.mean((ours.astype(np.float64) - theirs.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def benchmark_requests(smoke: bool, draft: bool = False) -> dict[int, VideoRequest]:
    """Each tier's request: the production defaults on a GPU (tier 4 at TIER4_GPU_STEPS), the
    smoke sizes on a CPU; with `draft`, the tiers of DRAFT_TIERS in draft mode."""
    tiers = DRAFT_TIERS if draft else TIERS if smoke else FULL_SIZE_TIERS
    sizes = dict(SMOKE_SIZES) if smoke else {4: dict(num_inference_steps=TIER4_GPU_STEPS)}
    if draft:  # the draft's recipe sets the steps
        sizes = {
            tier: {k: v for k, v in sizes.get(tier, {}).items() if k != "num_inference_steps"}
            for tier in tiers
        }
    return {
        tier: resolve_request(
            dict(tier=tier, prompt=PROMPT, seed=1234, draft=draft, **sizes.get(tier, {}))
        )
        for tier in tiers
    }


def at_default_steps(row: dict, request: VideoRequest) -> float | None:
    """A run at fewer steps than the defaults' stated at the defaults: its measured seconds plus
    the missing steps at its measured seconds per step (the other stages do not depend on the
    steps). None when it ran at the defaults, or where the steps are not one stage of their own
    (tier 3's run in its keyframe and animating stages, beside their decodes)."""
    defaults = resolve_request(dict(tier=request.tier, prompt=PROMPT))
    missing = defaults.num_inference_steps - request.num_inference_steps
    if request.draft or missing == 0 or "denoising" not in row["stages"]:
        return None
    return row["seconds"] + missing * row["stages"]["denoising"] / request.num_inference_steps


def benchmark(weights_dir: Path, device: Device, smoke: bool, runs: int, warmups: int) -> dict:
    requests = benchmark_requests(smoke)
    tiers = tuple(requests)
    results = {"peak_matmul_tflops": matmul_peak_tflops(device), "tiers": {}, "drafts": {}}

    results.update(measure_verification(weights_dir, tiers))
    # (b) ours first, so its peak memory counts only its own models, every tier resident.
    setup_seconds, ours = timed(lambda: load_tiers(weights_dir, device, tiers), device)
    results["setup_seconds"] = setup_seconds
    measured = {
        tier: measure_ours(ours[tier], requests[tier], device, runs, warmups) for tier in tiers
    }
    for tier, request in benchmark_requests(smoke, draft=True).items():
        draft = measure_ours(ours[tier], request, device, runs, warmups)
        results["drafts"][tier] = dict(
            settings=settings_text(request),
            ours_seconds=draft["seconds"],
            ours_stages=draft["stages"],
            tflop=draft["flops"] / 1e12,
            peak_vram_gib=draft["peak_vram_gib"],
            dollars_per_video=draft["seconds"] * H100_DOLLARS_PER_SECOND,
            frames_finite=bool(np.isfinite(draft["frames"]).all()),
        )
    del ours
    free_memory(device)
    stock_loaders = {2: stock_tier2, 3: stock_tier3, 4: stock_tier4}
    for tier, request in requests.items():
        stock_setup, run = timed(
            functools.partial(stock_loaders[tier], weights_dir, device), device
        )
        stock = measure_stock(run, request, device, runs, warmups)
        del run
        free_memory(device)
        b = measured[tier]
        results["tiers"][tier] = dict(
            settings=settings_text(request),
            ours_seconds_at_default_steps=at_default_steps(b, request),
            stock_seconds=stock["seconds"],
            stock_setup_seconds=stock_setup,
            ours_seconds=b["seconds"],
            speedup=stock["seconds"] / b["seconds"],
            ours_stages=b["stages"],
            tflop=b["flops"] / 1e12,
            achieved_tflops=b["flops"] / 1e12 / b["seconds"],
            share_of_peak=b["flops"] / 1e12 / b["seconds"] / results["peak_matmul_tflops"],
            peak_vram_gib=b["peak_vram_gib"],
            dollars_per_video=b["seconds"] * H100_DOLLARS_PER_SECOND,
            max_abs_error=float(np.abs(b["frames"] - stock["frames"]).max()),
            psnr_db=psnr(b["frames"], stock["frames"]),
            # In half precision an overflow shows as NaN (black after encoding) or as flat frames.
            frames_finite=bool(np.isfinite(b["frames"]).all()),
            min_frame_std=float(b["frames"].reshape(len(b["frames"]), -1).std(axis=1).min()),
        )
    return results


def settings_text(request: VideoRequest) -> str:
    return (
        f"{request.num_frames} frames {request.width}×{request.height}, "
        f"{request.num_inference_steps} steps" + (" (draft)" if request.draft else "")
    )


def measure_verification(weights_dir: Path, tiers=TIERS) -> dict:
    """The part of setup before loading: every file hashed against the lock (a first boot), then the
    same check again with the hashes cached (a warm boot, or an image built from verified
    weights)."""
    (weights_dir / VERIFIED_CACHE).unlink(missing_ok=True)
    started = time.perf_counter()
    for tier in tiers:
        verify_weights(weights_dir, tier)
    first = time.perf_counter() - started
    started = time.perf_counter()
    for tier in tiers:
        verify_weights(weights_dir, tier)
    cached = time.perf_counter() - started
    return dict(
        weights_gib=sum(
            (weights_dir / name).stat().st_size for tier in tiers for name in required_files(tier)
        )
        / 2**30,
        verify_first_boot_seconds=first,
        verify_cached_seconds=cached,
    )


def machine(device: Device) -> str:
    where = (
        torch.cuda.get_device_name()
        if device.is_gpu
        else f"CPU ({platform.processor() or platform.machine()})"
    )
    return f"{where}, torch {torch.__version__}, CUDA {torch.version.cuda}, {platform.node()}"


def vram_text(row: dict) -> str:
    return f"{row['peak_vram_gib']:.1f}" if row["peak_vram_gib"] is not None else "—"


def write_results(out: Path, results: dict, device: Device, smoke: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results = dict(
        results, date=datetime.date.today().isoformat(), machine=machine(device), smoke=smoke
    )
    (out / "benchmark.json").write_text(json.dumps(results, indent=1))
    lines = [
        f"# Benchmark, {results['date']}: {results['machine']}",
        "",
        "CPU smoke run on tiny random weights: checks the harness, says nothing about speed."
        if smoke
        else "Full-size architectures, random weights, production defaults (tier 4 at "
        f"{TIER4_GPU_STEPS} steps). Ours runs with every tier resident, so its peak VRAM is a "
        "container's that holds every tier.",
        "",
        f"Setup (ours, every model, to ready): {results['setup_seconds']:.1f} s, after verifying "
        f"{results['weights_gib']:.2f} GiB of weights against the lock: "
        f"{results['verify_first_boot_seconds']:.1f} s on a first boot (every file hashed), "
        f"{results['verify_cached_seconds']:.2f} s with the hashes cached. "
        f"Measured matmul peak: {results['peak_matmul_tflops']:.1f} TFLOP/s.",
        "",
        "| tier | settings | stock s | ours s | speed-up | TFLOP | TFLOP/s | share of peak "
        "| peak VRAM GiB | $ per video (H100) | max abs err | PSNR dB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tier, r in results["tiers"].items():
        lines.append(
            f"| {tier} | {r['settings']} | {r['stock_seconds']:.2f} | {r['ours_seconds']:.2f} "
            f"| {r['speedup']:.2f}× | {r['tflop']:.3g} | {r['achieved_tflops']:.3g} "
            f"| {r['share_of_peak']:.1%} | {vram_text(r)} | "
            f"{r['dollars_per_video']:.4f} | {r['max_abs_error']:.2g} | {r['psnr_db']:.1f} |"
        )
    for tier, r in results["tiers"].items():
        if r.get("ours_seconds_at_default_steps"):
            seconds = r["ours_seconds_at_default_steps"]
            lines += [
                "",
                f"Tier {tier} ran at fewer steps than its defaults; at the defaults ours would "
                f"take about {seconds:.1f} s (${seconds * H100_DOLLARS_PER_SECOND:.4f} per "
                "video): the measured seconds plus the missing steps at the measured seconds per "
                "denoising step. Derived, not timed.",
            ]
    if results.get("drafts"):
        lines += [
            "",
            "Drafts (ours alone; every tier resident):",
            "",
            "| tier | settings | ours s | TFLOP | peak VRAM GiB | $ per video (H100) | frames |",
            "|---|---|---|---|---|---|---|",
        ]
        for tier, r in results["drafts"].items():
            lines.append(
                f"| {tier} | {r['settings']} | {r['ours_seconds']:.2f} | {r['tflop']:.3g} "
                f"| {vram_text(r)} | {r['dollars_per_video']:.4f} "
                f"| {'all finite' if r['frames_finite'] else 'NOT FINITE'} |"
            )
    lines += [
        "",
        "Our frames: "
        + "; ".join(
            f"tier {tier}: {'all finite' if r['frames_finite'] else 'NOT FINITE'}, "
            "smallest per-frame standard "
            f"deviation {r['min_frame_std']:.3f} (0 = a flat frame)"
            for tier, r in results["tiers"].items()
        ),
    ]
    lines += [
        "",
        "Our stages (median seconds): "
        + "; ".join(
            f"tier {tier}: "
            + ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in r["ours_stages"].items())
            for tier, r in results["tiers"].items()
        ),
    ]
    (out / "benchmark.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for benchmark.json and benchmark.md"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="CPU, tiny weights, tiny sizes, one run"
    )
    parser.add_argument("--weights-dir", type=Path, default=REPO / ".cache" / "full-size-weights")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmups", type=int, default=2)
    parser.add_argument(
        "--flops",
        action="store_true",
        help="only count tier 2's FLOPs per video, standard and draft, on the meta device "
        "(any machine)",
    )
    args = parser.parse_args()
    if args.flops:
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()  # its fp16-cast notices say nothing about FLOPs
        counted = count_tier2_flops_per_video()
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "flops.json").write_text(json.dumps(counted, indent=1))
        print(flops_table(counted))
        return

    device = pick_device()
    scratch = tempfile.TemporaryDirectory(prefix="bench-weights-")  # the smoke run's tiny weights
    if args.smoke:
        device = Device(torch.device("cpu"), torch.float32)
        weights_dir = Path(scratch.name)
        make_tiny_weights(weights_dir)
        args.runs, args.warmups = 1, 0
    else:
        if not device.is_gpu:
            sys.exit("The full benchmark needs a CUDA GPU; use --smoke on a CPU.")
        weights_dir = args.weights_dir
        ensure_full_size_weights(weights_dir, device)
    with scratch:
        results = benchmark(weights_dir, device, args.smoke, args.runs, args.warmups)
    write_results(args.out, results, device, args.smoke)
    print((args.out / "benchmark.md").read_text())


if __name__ == "__main__":
    main()
