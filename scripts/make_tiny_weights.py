"""Write tiny, randomly initialised models in exactly the on-disk layout of the real weights.

    python -m scripts.make_tiny_weights DIR

Nothing is downloaded: every model is built from a small config with a fixed seed and saved with
`save_pretrained` (safetensors, fp16 variants where the real repos publish them), and the CLIP
tokenizer is built from a vocabulary and merges file this script writes itself. The metadata files
are the real repositories' own, byte for byte (`model_index.json`, scheduler, tokenizer and
preprocessor configs, kept in scripts/hub_metadata/ with their sources in its SOURCES.md), so the
loaders meet the classes, extra components and settings they meet in production. Point the model
at the result with WEIGHTS_DIR=DIR; it loads through the same code as the real weights and says in
its logs that it runs on random weights.

The configs keep what makes the real models behave as they do at a given size: a VAE with the real
downsampling factor of 8 (four blocks), the UNet's four resolution levels, and the motion adapter's
32-frame limit. Channel counts are as small as the architectures allow, and spatial attention sits
only in the lowest-resolution block, where it is cheap on a CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from scripts.tiny_wan import make_wan22
from weights import TINY_MARKER, WEIGHT_SETS
from weights_build import write_lock

SEED = 0
# The real text encoders read at most 77 tokens; keep that so truncation behaves as in production.
MAX_TOKENS = 77
# Small enough for a CPU, and divisible by the group-norm group count below.
UNET_CHANNELS = (16, 16, 32, 32)
NORM_GROUPS = 8
TEXT_HIDDEN = 32
# The real repositories' metadata files, laid out as under the weights directory (SOURCES.md there).
HUB_METADATA = Path(__file__).resolve().parent / "hub_metadata"
# What a CLIP tokenizer folder holds in the real repos; save_pretrained adds tokenizer.json.
TOKENIZER_FILES = {"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"}
# The published CLIP text configs' token ids. With eos_token_id 2 (a legacy value transformers
# keeps) CLIP pools its output at the highest token id in the prompt, the end-of-text token here as
# in the real vocabulary: the tiny encoders take the path the real ones take.
CLIP_TOKEN_IDS = dict(bos_token_id=0, eos_token_id=2, pad_token_id=1)


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
    and the two special tokens, last, as in the real vocabulary (the end-of-text token has the
    highest id; "!", SDXL's second padding token, has id 0 in both). The tokenizer's configs are
    the published ones (install_published_metadata). Returns the vocabulary size for the text
    encoder's embedding.
    """
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = list(_byte_to_unicode().values())
    tokens = alphabet + [char + "</w>" for char in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return len(tokens)


def install_published_metadata(folder: Path) -> None:
    """Put the real repository's metadata files (scripts/hub_metadata/<folder name>/) into `folder`,
    over whatever save_pretrained wrote: today's library versions, the classes as instantiated here
    (DDIM instead of SD 1.5's PNDM, no safety checker), transformers' own tokenizer files."""
    published = HUB_METADATA / folder.name
    for source in sorted(published.rglob("*.json")):
        target = folder / source.relative_to(published)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def tiny_text_encoder(
    vocab_size: int,
    hidden: int = TEXT_HIDDEN,
    projection: bool = False,
    hidden_act: str = "quick_gelu",
):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=hidden,
        hidden_act=hidden_act,
        **CLIP_TOKEN_IDS,
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
    replaces tiny components by others (bench/benchmark.py passes full-size ones)."""
    models = models or {}
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    folder = WEIGHT_SETS["sd15"].path(weights_dir)
    vocab_size = write_clip_tokenizer(folder / "tokenizer")
    install_published_metadata(folder)
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    unet = models.get("unet") or tiny_unet(cross_attention_dim=TEXT_HIDDEN)
    # The repo's own scheduler (PNDM; tier 2 loads its config into DDIM with AnimateDiff's
    # settings).
    scheduler = PNDMScheduler.from_pretrained(folder, subfolder="scheduler")
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
    _restore_published_layout(folder, ("tokenizer",))


def make_sdxl(weights_dir: Path, models: dict | None = None) -> None:
    """SDXL base: two text encoders and tokenizers, the text_time-conditioned UNet, Euler."""
    models = models or {}
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTokenizer

    folder = WEIGHT_SETS["sdxl"].path(weights_dir)
    vocab_size = write_clip_tokenizer(folder / "tokenizer")
    write_clip_tokenizer(folder / "tokenizer_2")
    install_published_metadata(folder)
    unet = models.get("unet") or tiny_unet(
        # Both encoders' hidden states side by side, as in SDXL (768 + 1280 there).
        cross_attention_dim=2 * TEXT_HIDDEN,
        use_linear_projection=True,
        # SDXL's micro-conditioning: pooled text embedding + 6 size/crop numbers.
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=TEXT_HIDDEN + 6 * 8,
    )
    scheduler = EulerDiscreteScheduler.from_pretrained(folder, subfolder="scheduler")
    pipeline = StableDiffusionXLPipeline(
        vae=tiny_vae(scaling_factor=0.13025),  # not saved: the fp16-fix VAE replaces it
        # SDXL's first encoder is the same OpenAI CLIP ViT-L as SD 1.5's: same weights here too.
        text_encoder=models.get("text_encoder") or tiny_text_encoder(vocab_size),
        text_encoder_2=models.get("text_encoder_2")
        or tiny_text_encoder(vocab_size, projection=True, hidden_act="gelu"),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
        unet=unet,
        scheduler=scheduler,
    )
    pipeline.to(torch.float16).save_pretrained(folder, variant="fp16", safe_serialization=True)
    _restore_published_layout(folder, ("tokenizer", "tokenizer_2"))
    # The fp16-fix VAE is a separate repo; the base repo's own vae/ is not part of our download.
    shutil.rmtree(folder / "vae")
    (models.get("fp16_fix_vae") or tiny_vae(scaling_factor=0.13025, force_upcast=False)).to(
        torch.float16
    ).save_pretrained(WEIGHT_SETS["sdxl_vae"].path(weights_dir), safe_serialization=True)


def make_svd(weights_dir: Path, models: dict | None = None) -> None:
    """SVD-XT 1.1: spatio-temporal UNet, temporal-decoder VAE, CLIP vision encoder, Euler
    (Karras)."""
    models = models or {}
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    # The temporal decoder hard-codes 32 norm groups, so its channel counts are multiples of 32.
    vae = models.get("vae") or tiny_vae(
        AutoencoderKLTemporalDecoder,
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        norm_num_groups=None,
    )
    unet = models.get("unet") or _seeded(
        lambda: UNetSpatioTemporalConditionModel(
            block_out_channels=(32, 32, 32, 32),
            layers_per_block=1,
            sample_size=64,
            in_channels=8,  # noisy latents + the conditioning image's latents
            out_channels=4,
            down_block_types=("DownBlockSpatioTemporal",) * 3
            + ("CrossAttnDownBlockSpatioTemporal",),
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
            CLIPVisionConfig(
                hidden_size=TEXT_HIDDEN,
                projection_dim=TEXT_HIDDEN,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=37,
                image_size=224,
                patch_size=14,
                hidden_act="gelu",
            )
        )
    )
    # The repo's scheduler (v-prediction, continuous timesteps, Karras sigmas) and image processor.
    folder = WEIGHT_SETS["svd"].path(weights_dir)
    install_published_metadata(folder)
    pipeline = StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_pretrained(folder, subfolder="scheduler"),
        feature_extractor=CLIPImageProcessor.from_pretrained(folder, subfolder="feature_extractor"),
    )
    pipeline.to(torch.float16).save_pretrained(folder, variant="fp16", safe_serialization=True)
    _restore_published_layout(folder)


def _restore_published_layout(folder: Path, tokenizers=()) -> None:
    """save_pretrained rewrites the metadata in today's libraries' own form (and tokenizers in
    transformers' format): put back the real repository's files and layout."""
    for subfolder in tokenizers:
        for extra in (folder / subfolder).iterdir():
            if extra.name not in TOKENIZER_FILES:
                extra.unlink()
        write_clip_tokenizer(folder / subfolder)
    install_published_metadata(folder)


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

    tower = dict(
        hidden_size=TEXT_HIDDEN, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4
    )
    config = CLIPConfig(
        text_config=tower,
        vision_config=dict(tower, image_size=224, patch_size=14),
        projection_dim=TEXT_HIDDEN,
    )
    return _seeded(lambda: StableDiffusionSafetyChecker(config))


def make_safety_checker(
    weights_dir: Path, models: dict | None = None, flags_every_image: bool = False
) -> None:
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
    checker.to(torch.float16).save_pretrained(
        folder / "safety_checker", variant="fp16", safe_serialization=True
    )
    (folder / "feature_extractor").mkdir(parents=True, exist_ok=True)
    (folder / "feature_extractor" / "preprocessor_config.json").write_text(
        json.dumps(SAFETY_FEATURE_EXTRACTOR, indent=2)
    )


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


def _train_sentencepiece(lines, vocab_size: int, **special_ids: int) -> bytes:
    """A unigram SentencePiece model trained on `lines`; `special_ids` (pad_id=0, ...) set where
    the real tokenizer puts its special pieces."""
    import io

    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
        **special_ids,
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
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"target_lang": "en", "source_lang": "th"})
    )

    pad = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab),
        decoder_vocab_size=len(vocab),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=512,
        activation_function="swish",
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        pad_token_id=pad,
        decoder_start_token_id=pad,
        eos_token_id=0,
        forced_eos_token_id=0,
        bos_token_id=0,
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
        bad_words_ids=[[pad]],
        bos_token_id=0,
        decoder_start_token_id=pad,
        eos_token_id=0,
        forced_eos_token_id=0,
        max_length=TRANSLATOR_MAX_LENGTH,
        num_beams=4,
        pad_token_id=pad,
        renormalize_logits=True,
    )
    model.save_pretrained(folder, safe_serialization=True)


# AnimateDiff's motion LoRAs are rank 64 in fp32: the README of guoyww/AnimateDiff lists 19 M
# parameters and 74 MB (MiB) per LoRA, which is rank 64 on the 8 attention projections (q, k, v,
# out of attn1 and attn2) of every motion module, the v2 mid block's included.
MOTION_LORA_RANK = 64


def make_animatediff_lightning(weights_dir: Path) -> None:
    """AnimateDiff-Lightning's one file: MotionAdapter's whole state dict in fp16 at the repo's top
    level (no config.json). Its architecture is the v3 adapter's plus a mid-block motion module
    (it was distilled from v2), so the tiny one is the tiny v3 adapter's shape plus that module."""
    from diffusers import MotionAdapter
    from safetensors.torch import save_file

    config = MotionAdapter.load_config(WEIGHT_SETS["animatediff"].path(weights_dir))
    config["use_motion_mid_block"] = True
    torch.manual_seed(SEED + 1)  # not the v3 adapter's draw: the two modules must differ
    adapter = MotionAdapter.from_config(config)
    lightning = WEIGHT_SETS["animatediff_lightning"]
    lightning.path(weights_dir).mkdir(parents=True, exist_ok=True)
    state_dict = {
        name: tensor.to(torch.float16).contiguous() for name, tensor in adapter.state_dict().items()
    }
    save_file(state_dict, lightning.path(weights_dir) / lightning.files[0])


def motion_lora_state_dict(
    adapter_state_dict: dict, seed: int, rank: int = MOTION_LORA_RANK
) -> dict:
    """A motion LoRA in the layout of the guoyww/animatediff-motion-lora-* files: diffusers'
    conversion (scripts/convert_animatediff_motion_lora_to_diffusers.py) keeps AnimateDiff's own
    attention-processor names and prefixes `unet.`, e.g.
    `unet.down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight`."""
    generator = torch.Generator().manual_seed(seed)
    lora = {}
    for name, weight in sorted(adapter_state_dict.items()):
        if "motion_modules" not in name or ".attn" not in name:
            continue
        for projection in ("to_q", "to_k", "to_v", "to_out.0"):
            if name.endswith(f".{projection}.weight"):
                module = name[: -len(f".{projection}.weight")]
                key = f"unet.{module}.processor.{projection.removesuffix('.0')}_lora"
                out_features, in_features = weight.shape
                lora[f"{key}.down.weight"] = 0.1 * torch.randn(
                    rank, in_features, generator=generator
                )
                lora[f"{key}.up.weight"] = 0.1 * torch.randn(
                    out_features, rank, generator=generator
                )
    return lora


def make_motion_loras(weights_dir: Path) -> None:
    """One LoRA per camera move, each with its own random draw, for the Lightning module's shape."""
    from safetensors.torch import load_file, save_file

    lightning = WEIGHT_SETS["animatediff_lightning"]
    adapter_state_dict = load_file(lightning.path(weights_dir) / lightning.files[0])
    names = [name for name in WEIGHT_SETS if name.startswith("motion_lora_")]
    for index, name in enumerate(names):
        folder = WEIGHT_SETS[name].path(weights_dir)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            motion_lora_state_dict(adapter_state_dict, SEED + 100 + index),
            folder / WEIGHT_SETS[name].files[0],
        )


# The function that writes each weight set (bench/rehearse.py writes them one at a time), then
# those made from sets already written, at their size (the draft motion module and its LoRAs).
def make_sd15_with_safety_checker(weights_dir: Path, models: dict | None = None) -> None:
    make_sd15(weights_dir, models)
    make_safety_checker(weights_dir, models)


# The translator is always the tiny one (bench/rehearse.py builds no full-size MarianMT).
WRITERS = {
    "sd15": make_sd15_with_safety_checker,
    "animatediff": make_animatediff_adapter,
    "sdxl": make_sdxl,
    "svd": make_svd,
    "wan22_ti2v": make_wan22,
}
DERIVED_WRITERS = (make_animatediff_lightning, make_motion_loras, make_translator)


def write_weights(weights_dir: Path, models: dict[str, dict] | None = None) -> None:
    """Every weight set in the production layout; `models` (by set) overrides tiny components."""
    models = models or {}
    weights_dir.mkdir(parents=True, exist_ok=True)
    for name, write in WRITERS.items():
        write(weights_dir, models.get(name))
    for write in DERIVED_WRITERS:
        write(weights_dir)


def make_tiny_weights(weights_dir: Path) -> None:
    write_weights(weights_dir)
    (weights_dir / TINY_MARKER).write_text(
        json.dumps(
            {"tiny_random_weights": True, "seed": SEED, "sets": sorted(WEIGHT_SETS)}, indent=2
        )
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
