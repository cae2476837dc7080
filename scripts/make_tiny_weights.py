"""Write tiny, randomly initialised models in exactly the on-disk layout of the real weights.

    python scripts/make_tiny_weights.py DIR

Nothing is downloaded: every model is built from a small config with a fixed seed and saved with
`save_pretrained` (safetensors, fp16 variants where the real repos publish them), and the CLIP
tokenizer is built from a vocabulary and merges file this script writes itself. Point the model at
the result with WEIGHTS_DIR=DIR; it loads through the same code as the real weights and says in its
logs that it runs on random weights.

The configs keep what makes the real models behave as they do at a given size: a VAE with the real
downsampling factor of 8 (four blocks), the UNet's four resolution levels, and the motion adapter's
32-frame limit. Channel counts are as small as the architectures allow, and spatial attention sits
only in the lowest-resolution block, where it is cheap on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from weights import TINY_MARKER, WEIGHT_SETS  # noqa: E402

SEED = 0
# The real text encoders read at most 77 tokens; keep that so truncation behaves as in production.
MAX_TOKENS = 77
# Small enough for a CPU, and divisible by the group-norm group count below.
UNET_CHANNELS = (16, 16, 32, 32)
NORM_GROUPS = 8
TEXT_HIDDEN = 32


def _seeded(build):
    """diffusers' fast tests seed before each component, so each one is reproducible on its own."""
    torch.manual_seed(SEED)
    return build()


def _byte_to_unicode() -> dict[int, str]:
    """CLIP's byte-level alphabet (the GPT-2 table): every byte maps to one printable character."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(code) for code in codes)))


def write_clip_tokenizer(folder: Path) -> int:
    """A working CLIP BPE tokenizer with no merges: it splits any prompt into characters.

    The vocabulary is the 256 byte-level characters, the same with the end-of-word suffix `</w>`,
    and the two special tokens. Returns the vocabulary size for the text encoder's embedding.
    """
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = list(_byte_to_unicode().values())
    tokens = alphabet + [char + "</w>" for char in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_TOKENS,
        "do_lower_case": True,
        **special,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return len(tokens)


def tiny_text_encoder(vocab_size: int, hidden: int = TEXT_HIDDEN, projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=hidden,
        hidden_act="quick_gelu",
        # The real CLIP tokenizer's <|endoftext|> id; pooling looks for it (the eos token here).
        eos_token_id=vocab_size - 1,
        bos_token_id=vocab_size - 2,
        pad_token_id=vocab_size - 1,
    )
    model_class = CLIPTextModelWithProjection if projection else CLIPTextModel
    return _seeded(lambda: model_class(config))


def tiny_vae(cls=None, **overrides):
    """Four blocks, so the latent is 1/8 of the image on each side, as in every real VAE here."""
    from diffusers import AutoencoderKL

    cls = cls or AutoencoderKL
    config = dict(
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=NORM_GROUPS,
        sample_size=64,
    )
    if cls is AutoencoderKL:
        config.update(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
        )
    config.update(overrides)
    return _seeded(lambda: cls(**config))


def make_sd15(weights_dir: Path) -> None:
    """Stable Diffusion 1.5's folders (unet, vae, text_encoder, tokenizer, scheduler)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    folder = WEIGHT_SETS["sd15"].path(weights_dir)
    vocab_size = write_clip_tokenizer(folder / "tokenizer")
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    unet = _seeded(
        lambda: UNet2DConditionModel(
            block_out_channels=UNET_CHANNELS,
            layers_per_block=1,
            norm_num_groups=NORM_GROUPS,
            sample_size=64,
            in_channels=4,
            out_channels=4,
            # Spatial attention only at the lowest resolution: full-resolution attention is what
            # makes a tiny model slow at large sizes on a CPU.
            down_block_types=("DownBlock2D",) * 3 + ("CrossAttnDownBlock2D",),
            up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * 3,
            cross_attention_dim=TEXT_HIDDEN,
            attention_head_dim=8,
        )
    )
    # The scheduler config of the real SD 1.5 repo; AnimateDiff overrides some of it when loading.
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        vae=tiny_vae(),
        text_encoder=tiny_text_encoder(vocab_size),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.to(torch.float16).save_pretrained(folder, variant="fp16", safe_serialization=True)
    # save_pretrained rewrites the tokenizer in transformers' own format; put back the real layout.
    for extra in (folder / "tokenizer").iterdir():
        if extra.name not in {"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"}:
            extra.unlink()
    write_clip_tokenizer(folder / "tokenizer")


def make_animatediff_adapter(weights_dir: Path) -> None:
    from diffusers import MotionAdapter

    adapter = _seeded(
        lambda: MotionAdapter(
            block_out_channels=UNET_CHANNELS,
            motion_layers_per_block=1,
            motion_mid_block_layers_per_block=1,
            motion_num_attention_heads=2,
            motion_norm_num_groups=NORM_GROUPS,
            # The real adapter's limit: AnimateDiff v3 was trained on at most 32 frames.
            motion_max_seq_length=32,
            use_motion_mid_block=False,
        )
    )
    adapter.to(torch.float16).save_pretrained(
        WEIGHT_SETS["animatediff"].path(weights_dir), safe_serialization=True
    )


def make_tiny_weights(weights_dir: Path) -> None:
    weights_dir.mkdir(parents=True, exist_ok=True)
    make_sd15(weights_dir)
    make_animatediff_adapter(weights_dir)
    (weights_dir / TINY_MARKER).write_text(
        json.dumps({"tiny_random_weights": True, "seed": SEED, "sets": sorted(WEIGHT_SETS)}, indent=2)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights_dir", type=Path, help="folder to write the tiny weights into")
    args = parser.parse_args()
    make_tiny_weights(args.weights_dir)
    print(f"Wrote tiny random weights to {args.weights_dir.resolve()}")


if __name__ == "__main__":
    main()
