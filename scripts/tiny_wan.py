"""Tier 4's tiny stand-in: Wan 2.2 TI2V-5B in the Diffusers repository's layout, with tiny sizes.

Written by `python -m scripts.make_tiny_weights DIR` with the other sets. The shapes keep what
makes the real model behave as it does: the Wan 2.2 VAE's 16× spatial and 4× temporal compression
into 48 latent channels (patch 2), the transformer's (1, 2, 2) patches over those 48 channels (so
sizes are multiples of 32 and frame counts 4k+1, as in production), a UMT5 encoder read through a
SentencePiece tokenizer trained here, and the repository's scheduler and pipeline settings. The
transformer and the text encoder are sharded under the real repository's file names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from weights import WEIGHT_SETS

SEED = 0
TEXT_HIDDEN = 32
# Wan-AI/Wan2.2-TI2V-5B-Diffusers' model_index.json, as its loaders read it: one transformer
# (transformer_2 null, so no boundary between two experts) and `expand_timesteps`, which gives
# every latent patch its own timestep so the first frame can stay the caller's image.
MODEL_INDEX = {
    "_class_name": "WanPipeline",
    "_diffusers_version": "0.35.0.dev0",
    "boundary_ratio": None,
    "expand_timesteps": True,
    "scheduler": ["diffusers", "UniPCMultistepScheduler"],
    "text_encoder": ["transformers", "UMT5EncoderModel"],
    "tokenizer": ["transformers", "T5TokenizerFast"],
    "transformer": ["diffusers", "WanTransformer3DModel"],
    "transformer_2": [None, None],
    "vae": ["diffusers", "AutoencoderKLWan"],
}
# The repository's UniPC flow-matching scheduler; flow_shift 5.0 is Wan-Video/Wan2.2
# wan/configs/wan_ti2v_5B.py's sample_shift for TI2V-5B.
SCHEDULER = {
    "_class_name": "UniPCMultistepScheduler",
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "disable_corrector": [],
    "dynamic_thresholding_ratio": 0.995,
    "final_sigmas_type": "zero",
    "flow_shift": 5.0,
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "predict_x0": True,
    "prediction_type": "flow_prediction",
    "rescale_betas_zero_snr": False,
    "sample_max_value": 1.0,
    "solver_order": 2,
    "solver_p": None,
    "solver_type": "bh2",
    "steps_offset": 0,
    "thresholding": False,
    "timestep_spacing": "linspace",
    "trained_betas": None,
    "use_beta_sigmas": False,
    "use_exponential_sigmas": False,
    "use_flow_sigmas": True,
    "use_karras_sigmas": False,
}
# The tokenizer learns its pieces from these (English and Thai, as prompts arrive after and
# without translation); UMT5 reads at most 512 tokens (Wan-Video/Wan2.2 shared_config.py text_len).
TOKENIZER_TEXT = (
    "a red tram crossing a bridge at dawn",
    "the camera moves slowly through an empty room",
    "a lighthouse at dusk, long exposure, waves",
    "close-up of a cat turning its head",
    "ตลาดน้ำยามเช้า เรือพายผ่านช้าๆ",
    "ฝนตกบนถนนในเมือง",
)
MAX_TOKENS = 512
TOKENIZER_VOCAB = 128
# The published VAE's per-channel latent statistics have 48 values; these stand in for them.
LATENT_MEAN = [round(0.01 * (i % 7) - 0.03, 2) for i in range(48)]
LATENT_STD = [round(0.5 + 0.05 * (i % 5), 2) for i in range(48)]


def _seeded(build, seed=SEED):
    torch.manual_seed(seed)
    return build()


# The tiny Wan 2.2 TI2V components diffusers' own tests build (16× spatial, 4× temporal, z 48).
TRANSFORMER_CONFIG = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=48,
    out_channels=48,
    text_dim=TEXT_HIDDEN,
    freq_dim=32,
    ffn_dim=32,
    num_layers=2,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
)
VAE_CONFIG = dict(
    base_dim=3,
    z_dim=48,
    in_channels=12,
    out_channels=12,
    is_residual=True,
    patch_size=2,
    dim_mult=[1, 1, 1, 1],
    num_res_blocks=1,
    scale_factor_spatial=16,
    scale_factor_temporal=4,
    temperal_downsample=[False, True, True],
)


def tiny_transformer(seed=SEED):
    from diffusers import WanTransformer3DModel

    return _seeded(lambda: WanTransformer3DModel(**TRANSFORMER_CONFIG), seed)


def tiny_vae():
    from diffusers import AutoencoderKLWan

    return _seeded(
        lambda: AutoencoderKLWan(**VAE_CONFIG, latents_mean=LATENT_MEAN, latents_std=LATENT_STD)
    )


def tiny_text_encoder(vocab_size: int):
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(
        vocab_size=vocab_size,
        d_model=TEXT_HIDDEN,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        relative_attention_num_buckets=8,
    )
    return _seeded(lambda: UMT5EncoderModel(config))


def write_tokenizer(folder: Path) -> int:
    """A UMT5-style SentencePiece tokenizer (pad 0, end 1, unknown 2, as T5's), in the repository's
    files: spiece.model, tokenizer.json, tokenizer_config.json, special_tokens_map.json. Returns
    the vocabulary size for the text encoder's embedding."""
    import sentencepiece
    from transformers import T5Tokenizer

    # Imported here: make_tiny_weights imports this module.
    from scripts.make_tiny_weights import _train_sentencepiece

    model = _train_sentencepiece(
        TOKENIZER_TEXT * 4, TOKENIZER_VOCAB, pad_id=0, eos_id=1, unk_id=2, bos_id=-1
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(model)
    processor = sentencepiece.SentencePieceProcessor(model_proto=model)
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(len(processor))]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=MAX_TOKENS)
    tokenizer.save_pretrained(folder)
    (folder / "special_tokens_map.json").write_text(
        json.dumps({"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}, indent=2)
    )
    return len(tokenizer)


def save_sharded(model: torch.nn.Module, folder: Path, stem: str, shards: int) -> None:
    """`model`'s config and weights as `shards` safetensors files named as the Hub names them
    (`{stem}-00001-of-0000N.safetensors`) with their index, which from_pretrained follows."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)  # the config (and a file replaced below)
    for written in folder.glob("*.safetensors"):
        written.unlink()
    # Tied tensors are saved once each, as copies: safetensors refuses shared storage.
    state = {
        name: tensor.detach().clone().contiguous() for name, tensor in model.state_dict().items()
    }
    names = sorted(state)
    weight_map, total = {}, 0
    for index in range(shards):
        part = names[index::shards]
        filename = f"{stem}-{index + 1:05d}-of-{shards:05d}.safetensors"
        save_file({name: state[name] for name in part}, str(folder / filename), {"format": "pt"})
        weight_map.update(dict.fromkeys(part, filename))
        total += sum(state[name].numel() * state[name].element_size() for name in part)
    index_file = folder / f"{stem}.safetensors.index.json"
    index_file.write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )


def make_wan22(weights_dir: Path, models: dict | None = None) -> None:
    """Wan 2.2 TI2V-5B's folders: transformer, vae, text_encoder, tokenizer, scheduler and
    model_index.json. `models` replaces tiny components by others."""
    models = models or {}
    folder = WEIGHT_SETS["wan22_ti2v"].path(weights_dir)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = write_tokenizer(folder / "tokenizer")
    save_sharded(
        models.get("transformer") or tiny_transformer(),
        folder / "transformer",
        "diffusion_pytorch_model",
        3,
    )
    save_sharded(
        models.get("text_encoder") or tiny_text_encoder(vocab_size),
        folder / "text_encoder",
        "model",
        5,
    )
    (models.get("vae") or tiny_vae()).save_pretrained(folder / "vae", safe_serialization=True)
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER, indent=2))
    (folder / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2))
    # The draft's transformer: the same architecture, other (random) weights.
    draft_folder = WEIGHT_SETS["fastwan22_ti2v"].path(weights_dir) / "transformer"
    draft = models.get("draft_transformer") or tiny_transformer(seed=SEED + 1)
    if draft is models.get("transformer"):
        # One model for both (bench/benchmark.py's full-size weights, where values do not matter):
        # its files are linked, not written twice, which saves 10 GB of writing at full size.
        draft_folder.mkdir(parents=True, exist_ok=True)
        for written in (folder / "transformer").iterdir():
            (draft_folder / written.name).unlink(missing_ok=True)
            os.link(written, draft_folder / written.name)
        return
    save_sharded(draft, draft_folder, "diffusion_pytorch_model", 3)
