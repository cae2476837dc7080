"""Every weight set the model uses, where it lives on disk and whether it is all there: what
`setup()` checks before anything is loaded.

One manifest (`WEIGHT_SETS`) names each set the model uses: the Hub repository it comes from, the
files the model needs from it (fp16 safetensors variants where the repo publishes them, nothing
else), and the folder under the weights directory that holds them. The loading code in
`pipelines/` reads from these folders with diffusers' `from_pretrained`, whether they hold the real
weights or the tiny random ones that `scripts/make_tiny_weights.py` writes in the same layout.

Beside it: `weights_lock.py` checks the files against the sizes and hashes the lock pins,
`weights_fetch.py` downloads what is missing, `weights_build.py` writes the lock and packs a CDN
archive.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

# The environment variable that points the model at a weights directory (real or tiny).
WEIGHTS_DIR_ENV = "WEIGHTS_DIR"
# Where a container built by `cog build` finds the weights when WEIGHTS_DIR is not set.
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Written by scripts/make_tiny_weights.py, so a run on random weights can never pass for a real one.
TINY_MARKER = "TINY_RANDOM_WEIGHTS.json"

# The SD 1.5 pipeline folders AnimateDiff reads; tokenizer files as the real repo ships them.
_SD_TOKENIZER = (
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
)


@dataclass(frozen=True)
class WeightSet:
    """One model repository, as much of it as the model needs."""

    folder: str  # under the weights directory
    repo: str  # Hugging Face Hub repository it comes from
    variant: str | None  # diffusers' `variant=` for the .fp16.safetensors files, None if unsplit
    files: tuple[str, ...]  # paths inside the folder that must all be present
    tier: int
    # A branch, tag or commit. A branch is resolved to its commit on the first download and the
    # lock records that commit, so every later fetch takes the same files (and the lock pins their
    # content). A commit is written here only where `main` itself will not do (see "opus_mt_th_en").
    revision: str = "main"

    def path(self, weights_dir: Path) -> Path:
        return weights_dir / self.folder


WEIGHT_SETS: dict[str, WeightSet] = {
    "sd15": WeightSet(
        folder="stable-diffusion-v1-5",
        repo="stable-diffusion-v1-5/stable-diffusion-v1-5",
        variant="fp16",
        files=(
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder/model.fp16.safetensors",
            *_SD_TOKENIZER,
            "unet/config.json",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.fp16.safetensors",
            # The Stable Diffusion safety checker published with SD 1.5 (a CLIP ViT-L/14 image
            # encoder and concept embeddings), run on both tiers' frames: pipelines/safety.py.
            "feature_extractor/preprocessor_config.json",
            "safety_checker/config.json",
            "safety_checker/model.fp16.safetensors",
        ),
        tier=2,
    ),
    "animatediff": WeightSet(
        folder="animatediff-motion-adapter-v1-5-3",
        repo="guoyww/animatediff-motion-adapter-v1-5-3",
        # The adapter repo publishes one safetensors file, in fp32 (about 1.67 GB: 417 M
        # parameters), and no fp16 variant; it is cast to the model's dtype when loaded.
        variant=None,
        files=("config.json", "diffusion_pytorch_model.safetensors"),
        tier=2,
    ),
    "sdxl": WeightSet(
        folder="stable-diffusion-xl-base-1.0",
        repo="stabilityai/stable-diffusion-xl-base-1.0",
        variant="fp16",
        # No vae/: SDXL's own VAE produces NaNs (black frames) in fp16; "sdxl_vae" replaces it.
        files=(
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder/model.fp16.safetensors",
            "text_encoder_2/config.json",
            "text_encoder_2/model.fp16.safetensors",
            *_SD_TOKENIZER,
            *(name.replace("tokenizer/", "tokenizer_2/") for name in _SD_TOKENIZER),
            "unet/config.json",
            "unet/diffusion_pytorch_model.fp16.safetensors",
        ),
        tier=3,
    ),
    "sdxl_vae": WeightSet(
        folder="sdxl-vae-fp16-fix",
        repo="madebyollin/sdxl-vae-fp16-fix",
        variant=None,
        files=("config.json", "diffusion_pytorch_model.safetensors"),
        tier=3,
    ),
    "svd": WeightSet(
        folder="stable-video-diffusion-img2vid-xt-1-1",
        repo="stabilityai/stable-video-diffusion-img2vid-xt-1-1",
        variant="fp16",
        files=(
            "model_index.json",
            "feature_extractor/preprocessor_config.json",
            "image_encoder/config.json",
            "image_encoder/model.fp16.safetensors",
            "scheduler/scheduler_config.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.fp16.safetensors",
        ),
        tier=3,
    ),
    # Draft mode (pipelines/draft.py). AnimateDiff-Lightning's 4-step motion module, distilled from
    # AnimateDiff v2 (so it has v2's mid-block motion module): one fp16 file of MotionAdapter's
    # state dict at the repo's top level (908 MB), which the model card loads with
    # `MotionAdapter().load_state_dict(load_file(...))`; the repo has no config.json.
    "animatediff_lightning": WeightSet(
        folder="animatediff-lightning",
        repo="ByteDance/AnimateDiff-Lightning",
        variant=None,
        files=("animatediff_lightning_4step_diffusers.safetensors",),
        tier=2,
    ),
    # AnimateDiff's camera-move LoRAs (rank 64, fp32, 77.4 MB each) in diffusers' format; they
    # were trained on the v2 motion module, so they apply to the Lightning one, not to v3.
    **{
        f"motion_lora_{move.replace('-', '_')}": WeightSet(
            folder=f"animatediff-motion-lora-{move}",
            repo=f"guoyww/animatediff-motion-lora-{move}",
            variant=None,
            files=("diffusion_pytorch_model.safetensors",),
            tier=2,
        )
        for move in (
            "zoom-in",
            "zoom-out",
            "pan-left",
            "pan-right",
            "tilt-up",
            "tilt-down",
            "rolling-clockwise",
            "rolling-anticlockwise",
        )
    },
    # Tier 4 (pipelines/tier4.py): Wan 2.2 TI2V-5B in diffusers' layout, one transformer for text
    # and image to video. The repo publishes no fp16 variant: the transformer and UMT5-XXL encoder
    # are sharded safetensors (diffusers' 10 GB and transformers' 5 GB default shards of fp32
    # weights), cast to the model's dtype when loaded. The shard names are pinned by the lock
    # (`python -m scripts.lock_weights`): a fetch that finds others fails naming the file.
    "wan22_ti2v": WeightSet(
        folder="wan2.2-ti2v-5b",
        repo="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
        variant=None,
        files=(
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder/model.safetensors.index.json",
            *(f"text_encoder/model-{i:05d}-of-00005.safetensors" for i in range(1, 6)),
            "tokenizer/special_tokens_map.json",
            "tokenizer/spiece.model",
            "tokenizer/tokenizer.json",
            "tokenizer/tokenizer_config.json",
            "transformer/config.json",
            "transformer/diffusion_pytorch_model.safetensors.index.json",
            *(
                f"transformer/diffusion_pytorch_model-{i:05d}-of-00003.safetensors"
                for i in range(1, 4)
            ),
            "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
        ),
        tier=4,
    ),
    # Tier 4's draft (pipelines/tier4_draft.py): FastVideo's DMD distillation of the same
    # transformer, full attention, sampled in 3 steps; only its transformer is used (the VAE, text
    # encoder and tokenizer are tier 4's). Laid out as the base repository's transformer folder.
    "fastwan22_ti2v": WeightSet(
        folder="fastwan2.2-ti2v-5b-fullattn",
        repo="FastVideo/FastWan2.2-TI2V-5B-FullAttn-Diffusers",
        variant=None,
        files=(
            "transformer/config.json",
            "transformer/diffusion_pytorch_model.safetensors.index.json",
            *(
                f"transformer/diffusion_pytorch_model-{i:05d}-of-00003.safetensors"
                for i in range(1, 4)
            ),
        ),
        tier=4,
    ),
    # Thai to English for prompts (pipelines/prompts.py), used by both tiers and fetched with
    # tier 2. The repository's main branch holds its weights as pytorch_model.bin (a pickle) and
    # tf_model.h5; its safetensors exist on the pull request the Hub's conversion bot opened,
    # refs/pr/3 ("Adding `safetensors` variant of this model", SFconvertbot, 24 Aug 2023), whose
    # commit is pinned here.
    "opus_mt_th_en": WeightSet(
        folder="opus-mt-th-en",
        repo="Helsinki-NLP/opus-mt-th-en",
        variant=None,  # one fp32 model.safetensors, 307 MB
        files=(
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "source.spm",
            "target.spm",
            "tokenizer_config.json",
            "vocab.json",
        ),
        tier=2,
        revision="134b8e85ad253e644c66e30fdfbbf20050a4bc68",
    ),
}

# The tiers that have weights, for the command-line tools, which must not import torch to know them
# (pipelines.inputs.TIERS; tests/test_weights.py holds the two equal).
WEIGHT_TIERS = tuple(sorted({weight_set.tier for weight_set in WEIGHT_SETS.values()}))


class WeightsError(RuntimeError):
    """Weights are missing or unusable; the message says which file and what to do."""


def weights_dir() -> Path:
    """The weights directory this process uses: $WEIGHTS_DIR, else ./weights next to this file."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(configured).expanduser().resolve() if configured else DEFAULT_WEIGHTS_DIR


# Presence: every file there, and none that pickle would load.


def required_files(tier: int | None = None):
    """Every file the sets for `tier` (all tiers if None) need, as paths under the weights
    directory."""
    for weight_set in WEIGHT_SETS.values():
        if tier is None or weight_set.tier == tier:
            for name in weight_set.files:
                yield f"{weight_set.folder}/{name}"


def missing_by_set(weights_dir: Path, tier: int | None = None):
    """(weight set, file) for every required file of `tier` (all tiers if None) not on disk."""
    for weight_set in WEIGHT_SETS.values():
        if tier is None or weight_set.tier == tier:
            for name in weight_set.files:
                if not (weight_set.path(weights_dir) / name).is_file():
                    yield weight_set, name


def missing_files(weights_dir: Path, tier: int | None = None) -> list[Path]:
    """Every required file of the sets for `tier` (all tiers if None) that is not on disk."""
    return [
        weight_set.path(weights_dir) / name
        for weight_set, name in missing_by_set(weights_dir, tier)
    ]


# Formats that torch loads with pickle, which can run arbitrary code from a tampered file.
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")


def pickle_files(weights_dir: Path, tier: int | None = None) -> list[Path]:
    """Every pickle-format file inside the folders of the sets for `tier` (all tiers if None)."""
    return sorted(
        path
        for weight_set in WEIGHT_SETS.values()
        if (tier is None or weight_set.tier == tier) and weight_set.path(weights_dir).is_dir()
        for path in weight_set.path(weights_dir).rglob("*")
        if path.suffix.lower() in PICKLE_SUFFIXES
    )


def require_weights(weights_dir: Path, tier: int) -> None:
    """Fail with an actionable message unless every file the tier needs is present, and refuse
    pickle-format weights outright: only safetensors are ever loaded."""
    unsafe = pickle_files(weights_dir, tier)
    if unsafe:
        raise WeightsError(
            f"Refusing pickle-format weights (they can run code when loaded): {unsafe[0]}"
            + (f" and {len(unsafe) - 1} more" if len(unsafe) > 1 else "")
            + ". Only .safetensors files are loaded; delete these files."
        )
    missing = missing_files(weights_dir, tier)
    if missing:
        shown = "\n  ".join(str(path) for path in missing[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise WeightsError(
            f"Tier {tier} weights are incomplete in {weights_dir} "
            f"({len(missing)} files missing):\n  {shown}{more}\n"
            f"Set {WEIGHTS_DIR_ENV} to a complete weights directory, or write tiny random test "
            f"weights with `python -m scripts.make_tiny_weights DIR` and set {WEIGHTS_DIR_ENV}=DIR."
        )


def tiny_weights_info(weights_dir: Path) -> dict | None:
    """The tiny-weights marker's contents when `weights_dir` holds random test weights, else
    None."""
    marker = weights_dir / TINY_MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None
