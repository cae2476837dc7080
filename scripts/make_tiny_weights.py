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

from weights import TINY_MARKER, WEIGHT_SETS, write_lock  # noqa: E402

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
    config = {key: value for key, value in config.items() if value is not None}
    return _seeded(lambda: cls(**config))


def tiny_unet(**conditioning):
    """SD 1.5's and SDXL's UNet shape: four resolution levels, tiny channel counts."""
    from diffusers import UNet2DConditionModel

    return _seeded(
        lambda: UNet2DConditionModel(
            block_out_channels=UNET_CHANNELS,
            layers_per_block=1,
            norm_num_groups=NORM_GROUPS,
            sample_size=64,
            # Spatial attention only at the lowest resolution: full-resolution attention is what
            # makes a tiny model slow at large sizes on a CPU.
            down_block_types=("DownBlock2D",) * 3 + ("CrossAttnDownBlock2D",),
            up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * 3,
            attention_head_dim=8,
            **conditioning,
        )
    )


def make_sd15(weights_dir: Path, models: dict | None = None) -> None:
    """Stable Diffusion 1.5's folders (unet, vae, text_encoder, tokenizer, scheduler). `models`
    replaces tiny components by others (scripts/benchmark.py passes full-size ones)."""
    models = models or {}
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    folder = WEIGHT_SETS["sd15"].path(weights_dir)
    vocab_size = write_clip_tokenizer(folder / "tokenizer")
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    unet = models.get("unet") or tiny_unet(cross_attention_dim=TEXT_HIDDEN)
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
        vae=models.get("vae") or tiny_vae(),
        text_encoder=models.get("text_encoder") or tiny_text_encoder(vocab_size),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.to(torch.float16).save_pretrained(folder, variant="fp16", safe_serialization=True)
    _restore_tokenizer_layout(folder, ("tokenizer",))


def make_sdxl(weights_dir: Path, models: dict | None = None) -> None:
    """SDXL base: two text encoders and tokenizers, the text_time-conditioned UNet, Euler."""
    models = models or {}
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTokenizer

    folder = WEIGHT_SETS["sdxl"].path(weights_dir)
    vocab_size = write_clip_tokenizer(folder / "tokenizer")
    write_clip_tokenizer(folder / "tokenizer_2")
    unet = models.get("unet") or tiny_unet(
        # Both encoders' hidden states side by side, as in SDXL (768 + 1280 there).
        cross_attention_dim=2 * TEXT_HIDDEN,
        use_linear_projection=True,
        # SDXL's micro-conditioning: pooled text embedding + 6 size/crop numbers.
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=TEXT_HIDDEN + 6 * 8,
    )
    # The real repo's scheduler config.
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    pipeline = StableDiffusionXLPipeline(
        vae=tiny_vae(scaling_factor=0.13025),  # not saved: the fp16-fix VAE replaces it
        # SDXL's first encoder is the same OpenAI CLIP ViT-L as SD 1.5's: same weights here too.
        text_encoder=models.get("text_encoder") or tiny_text_encoder(vocab_size),
        text_encoder_2=models.get("text_encoder_2") or tiny_text_encoder(vocab_size, projection=True),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
        unet=unet,
        scheduler=scheduler,
    )
    pipeline.to(torch.float16).save_pretrained(folder, variant="fp16", safe_serialization=True)
    _restore_tokenizer_layout(folder, ("tokenizer", "tokenizer_2"))
    # The fp16-fix VAE is a separate repo; the base repo's own vae/ is not part of our download.
    import shutil

    shutil.rmtree(folder / "vae")
    (models.get("fp16_fix_vae") or tiny_vae(scaling_factor=0.13025, force_upcast=False)).to(torch.float16).save_pretrained(
        WEIGHT_SETS["sdxl_vae"].path(weights_dir), safe_serialization=True
    )


def make_svd(weights_dir: Path, models: dict | None = None) -> None:
    """SVD-XT 1.1: spatio-temporal UNet, temporal-decoder VAE, CLIP vision encoder, Euler (Karras)."""
    models = models or {}
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    # The temporal decoder hard-codes 32 norm groups, so its channel counts are multiples of 32.
    vae = models.get("vae") or tiny_vae(AutoencoderKLTemporalDecoder, block_out_channels=(32, 32, 32, 32),
                   down_block_types=("DownEncoderBlock2D",) * 4, norm_num_groups=None)
    unet = models.get("unet") or _seeded(
        lambda: UNetSpatioTemporalConditionModel(
            block_out_channels=(32, 32, 32, 32),
            layers_per_block=1,
            sample_size=64,
            in_channels=8,  # noisy latents + the conditioning image's latents
            out_channels=4,
            down_block_types=("DownBlockSpatioTemporal",) * 3 + ("CrossAttnDownBlockSpatioTemporal",),
            up_block_types=("CrossAttnUpBlockSpatioTemporal",) + ("UpBlockSpatioTemporal",) * 3,
            cross_attention_dim=TEXT_HIDDEN,
            num_attention_heads=2,
            # fps, motion_bucket_id and noise_aug_strength, each embedded in 8 numbers.
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=3 * 8,
            num_frames=25,
        )
    )
    # SVD resizes the conditioning image to 224×224 for its CLIP encoder, so the tiny encoder must
    # accept 224 (the 32 of diffusers' own tests only works when tensors are passed in).
    image_encoder = models.get("image_encoder") or _seeded(
        lambda: CLIPVisionModelWithProjection(
            CLIPVisionConfig(hidden_size=TEXT_HIDDEN, projection_dim=TEXT_HIDDEN, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=37, image_size=224, patch_size=14)
        )
    )
    # The real repo's scheduler config (v-prediction, continuous timesteps, Karras sigmas).
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
        steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True,
    )
    pipeline = StableVideoDiffusionPipeline(
        vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler,
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    )
    pipeline.to(torch.float16).save_pretrained(
        WEIGHT_SETS["svd"].path(weights_dir), variant="fp16", safe_serialization=True
    )


def _restore_tokenizer_layout(folder: Path, subfolders) -> None:
    """save_pretrained rewrites tokenizers in transformers' own format; put back the real layout."""
    for subfolder in subfolders:
        for extra in (folder / subfolder).iterdir():
            if extra.name not in {"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"}:
                extra.unlink()
        write_clip_tokenizer(folder / subfolder)


def make_animatediff_adapter(weights_dir: Path, models: dict | None = None) -> None:
    from diffusers import MotionAdapter

    adapter = (models or {}).get("adapter") or _seeded(
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


# The Stable Diffusion safety checker and the Thai-to-English prompt translator (issue 15). Kept
# apart from the functions above: each writes only its own files into the real layout.

# SD 1.5's feature_extractor/preprocessor_config.json as the repository publishes it (342 bytes):
# resize the short side to 224, crop the centre 224×224, CLIP's mean and std.
SAFETY_FEATURE_EXTRACTOR = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "size": 224,
}


def tiny_safety_checker():
    """The checker's architecture (a CLIP vision tower, a projection, 17 + 3 concept embeddings),
    tiny. It reads 224×224 inputs with 14-pixel patches, as the real ViT-L/14 does."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig

    tower = dict(hidden_size=TEXT_HIDDEN, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(text_config=tower, vision_config=dict(tower, image_size=224, patch_size=14),
                        projection_dim=TEXT_HIDDEN)
    return _seeded(lambda: StableDiffusionSafetyChecker(config))


def make_safety_checker(weights_dir: Path, models: dict | None = None, flags_every_image: bool = False) -> None:
    """SD 1.5's safety_checker/ (fp16 variant) and feature_extractor/ folders.

    The concept embeddings are random, so the thresholds alone decide what is flagged: a cosine
    similarity is at most 1, so a threshold of 2 never flags and one of -2 flags every image
    (`flags_every_image`, for the tests that show a flagged clip refused)."""
    folder = WEIGHT_SETS["sd15"].path(weights_dir)
    checker = (models or {}).get("safety_checker") or tiny_safety_checker()
    threshold = -2.0 if flags_every_image else 2.0
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(threshold)
    checker.to(torch.float16).save_pretrained(folder / "safety_checker", variant="fp16", safe_serialization=True)
    (folder / "feature_extractor").mkdir(parents=True, exist_ok=True)
    (folder / "feature_extractor" / "preprocessor_config.json").write_text(json.dumps(SAFETY_FEATURE_EXTRACTOR, indent=2))


# A few shot descriptions a Thai screenwriter might type, and English ones, for the tiny
# sentencepiece vocabularies; the last Thai line is the alphabet, so any Thai text tokenizes into
# known pieces. Their meaning is irrelevant: the tiny model translates nothing.
THAI_TEXT = (
    "ฉากกลางคืน ฝนตกบนถนนในเมือง",
    "ชายคนหนึ่งเดินไปตามชายหาดตอนพระอาทิตย์ตก",
    "เด็กผู้หญิงวิ่งในทุ่งดอกไม้",
    "แมวสีดำนั่งอยู่บนหลังคา",
    "รถไฟแล่นผ่านภูเขาที่มีหมอก",
    "ตลาดน้ำตอนเช้า เรือเต็มไปด้วยผลไม้",
    "ภาพระยะใกล้ของใบหน้าผู้หญิงที่กำลังร้องไห้",
    "กล้องเคลื่อนช้าๆ ผ่านห้องที่ว่างเปล่า",
    "กขฃคฅฆงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรลวศษสหฬอฮ ะัาำิีึืุูเแโใไๅ็่้๊๋์ ๐๑๒๓๔๕๖๗๘๙ ฯๆ฿",
)
ENGLISH_TEXT = (
    "night scene, rain on a city street",
    "a man walks along the beach at sunset",
    "a girl runs through a field of flowers",
    "a black cat sits on a roof",
    "a train passes through misty mountains",
    "a floating market in the morning, boats full of fruit",
    "close-up of a woman's face, crying",
    "the camera moves slowly through an empty room",
)
TRANSLATOR_MAX_LENGTH = 12  # the real generation_config says 512; a tiny model has nothing to say


def _train_sentencepiece(lines, vocab_size: int) -> bytes:
    import io

    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2,
    )
    return model.getvalue()


def make_translator(weights_dir: Path) -> None:
    """Helsinki-NLP/opus-mt-th-en's files: MarianMT config and weights, a sentencepiece model per
    language trained here, the shared vocab.json (</s> first, <pad> last, as in OPUS-MT)."""
    import sentencepiece
    from transformers import GenerationConfig, MarianConfig, MarianMTModel

    folder = WEIGHT_SETS["opus_mt_th_en"].path(weights_dir)
    folder.mkdir(parents=True, exist_ok=True)
    source, target = _train_sentencepiece(THAI_TEXT, 128), _train_sentencepiece(ENGLISH_TEXT, 128)
    (folder / "source.spm").write_bytes(source)
    (folder / "target.spm").write_bytes(target)
    pieces = ["</s>", "<unk>"]
    english = set()
    for model, is_target in ((source, False), (target, True)):
        processor = sentencepiece.SentencePieceProcessor(model_proto=model)
        for index in range(processor.get_piece_size()):
            piece = processor.id_to_piece(index)
            if processor.is_control(index) or processor.is_unknown(index):
                continue
            english |= {piece} if is_target else set()
            if piece not in pieces:
                pieces.append(piece)
    pieces.append("<pad>")
    vocab = {piece: index for index, piece in enumerate(pieces)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=2))
    (folder / "tokenizer_config.json").write_text(json.dumps({"target_lang": "en", "source_lang": "th"}))

    pad = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab), decoder_vocab_size=len(vocab), d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_position_embeddings=512, activation_function="swish", scale_embedding=True,
        share_encoder_decoder_embeddings=True, pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=0,
        forced_eos_token_id=0, bos_token_id=0,
        # Wide random weights, so what a random model writes depends on what it reads.
        init_std=1.0,
    )
    model = _seeded(lambda: MarianMTModel(config))
    with torch.no_grad():
        # Only English pieces come out, as from a trained th-en model, and never an early end
        # (</s> is forced at max_length): a random model would otherwise echo Thai or say nothing.
        model.final_logits_bias[0, [i for piece, i in vocab.items() if piece not in english]] = -1e4
    # The keys of OPUS-MT's generation_config.json (renormalize_logits since transformers #4290).
    model.generation_config = GenerationConfig(
        bad_words_ids=[[pad]], bos_token_id=0, decoder_start_token_id=pad, eos_token_id=0, forced_eos_token_id=0,
        max_length=TRANSLATOR_MAX_LENGTH, num_beams=4, pad_token_id=pad, renormalize_logits=True,
    )
    model.save_pretrained(folder, safe_serialization=True)


def write_weights(weights_dir: Path, models: dict[str, dict] | None = None) -> None:
    """Every weight set in the production layout; `models` (by set) overrides tiny components."""
    models = models or {}
    weights_dir.mkdir(parents=True, exist_ok=True)
    make_sd15(weights_dir, models.get("sd15"))
    make_animatediff_adapter(weights_dir, models.get("animatediff"))
    make_sdxl(weights_dir, models.get("sdxl"))
    make_svd(weights_dir, models.get("svd"))
    make_safety_checker(weights_dir, models.get("sd15"))
    make_translator(weights_dir)


def make_tiny_weights(weights_dir: Path) -> None:
    write_weights(weights_dir)
    (weights_dir / TINY_MARKER).write_text(
        json.dumps({"tiny_random_weights": True, "seed": SEED, "sets": sorted(WEIGHT_SETS)}, indent=2)
    )
    write_lock(weights_dir)  # so the verification path runs wherever the tiny weights are used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights_dir", type=Path, help="folder to write the tiny weights into")
    args = parser.parse_args()
    make_tiny_weights(args.weights_dir)
    print(f"Wrote tiny random weights to {args.weights_dir.resolve()}")


if __name__ == "__main__":
    main()
