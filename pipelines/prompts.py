"""Prompts in the writer's language, for models that read English.

Both tiers read text with English CLIP (SD 1.5's and SDXL's encoders), whose byte-level BPE
vocabulary holds only 51 Thai characters: a Thai shot description becomes several times as many
byte fragments as its English equivalent, cut at 77 tokens and meaningless to the model (openai/CLIP
#7 advises against non-English input). So before a tier runs, the Thai parts of `prompt` and
`negative_prompt` are translated to English in the container by Helsinki-NLP/opus-mt-th-en
(MarianMT), the other parts kept as written, and the logs show the text the model reads. Text in
another script that CLIP's vocabulary does not cover is refused, naming the field: a clear error
beats an unrelated video. `translate_prompt=false` sends the text to CLIP exactly as written.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from pathlib import Path

import torch
from transformers import MarianMTModel, MarianTokenizer

from pipelines.common import Device
from pipelines.inputs import InputError, VideoRequest
from weights import WEIGHT_SETS

THAI_BLOCK = (0x0E00, 0x0E7F)  # Unicode's Thai block: consonants, vowels, tone marks, digits, ฿
# The least share of a text's letters (other than Thai, which is translated) that must be whole
# tokens of CLIP's vocabulary. English scores 100 %; a script CLIP never learnt scores near 0, its
# letters falling apart into byte fragments. Half leaves room for names and loanwords in English
# text.
MIN_READABLE_SHARE = 0.5
SUPPORTED_LANGUAGES = "English, and Thai (translated to English in the container)"
TEXT_FIELDS = ("prompt", "negative_prompt")


def is_thai(character: str) -> bool:
    return THAI_BLOCK[0] <= ord(character) <= THAI_BLOCK[1]


def is_letter(character: str) -> bool:
    return unicodedata.category(character).startswith("L")


def thai_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each run of Thai: from a Thai character to the last Thai character before a
    letter of another script. Spaces, digits and punctuation between Thai words stay in the run
    (Thai separates phrases with spaces, and "2 คน" is one phrase); the words of another
    language around it are left out, so they are kept as written."""
    spans, start, end = [], None, None
    for index, character in enumerate(text):
        if is_thai(character):
            start = index if start is None else start
            end = index + 1
        elif start is not None and is_letter(character):
            spans.append((start, end))
            start = None
    if start is not None:
        spans.append((start, end))
    return spans


def fields_read(request: VideoRequest) -> tuple[str, ...]:
    """The text inputs a model reads: none when tier 3 animates the caller's image (SVD reads no
    text, and no keyframe is rendered)."""
    return () if request.tier == 3 and request.image is not None else TEXT_FIELDS


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


class PromptTranslator:
    """Checks the script of each text input and translates its Thai parts to English."""

    def __init__(
        self, tokenizer: MarianTokenizer, model: MarianMTModel, clip_tokenizer, device: Device
    ):
        self.tokenizer, self.model, self.clip_tokenizer, self.device = (
            tokenizer,
            model,
            clip_tokenizer,
            device,
        )

    @classmethod
    def load(cls, weights_dir: Path, device: Device, clip_tokenizer) -> PromptTranslator:
        """`clip_tokenizer` is the text encoders' own (SD 1.5's; SDXL's first is the same): its
        vocabulary decides which scripts the models can read."""
        folder = WEIGHT_SETS["opus_mt_th_en"].path(weights_dir)
        tokenizer = MarianTokenizer.from_pretrained(folder)
        # Kept in fp32, as published (0.3 GB): the model is small, and its behaviour in fp16 has
        # not been checked.
        model = MarianMTModel.from_pretrained(folder, use_safetensors=True, dtype=torch.float32)
        return cls(tokenizer, model.to(device.torch_device).eval(), clip_tokenizer, device)

    def prepare(self, request: VideoRequest) -> VideoRequest:
        """The request with the English text the models will read; logs what was translated.
        Raises InputError naming the field for text in a script CLIP cannot read. The segments of
        a prompt_schedule are read like the prompt they are joined to."""
        texts = {field: getattr(request, field) for field in fields_read(request)}
        texts.update(
            {
                f"prompt_schedule segment {number}": text
                for number, (_, text) in enumerate(request.prompt_schedule, start=1)
            }
        )
        if not request.translate_prompt:
            for field, text in texts.items():
                if thai_spans(text):
                    print(
                        f"{field} contains Thai and translate_prompt=false: "
                        f"CLIP reads it as written.",
                        flush=True,
                    )
            return request
        for field, text in texts.items():
            self.check_readable(field, text)
        parts = [
            (field, start, end) for field, text in texts.items() for start, end in thai_spans(text)
        ]
        if not parts:
            return request
        english = self.translate([texts[field][start:end] for field, start, end in parts])
        changed = {}
        # Right to left, so earlier spans keep their offsets while later ones are replaced.
        for (field, start, end), translation in sorted(
            zip(parts, english), key=lambda item: -item[0][1]
        ):
            text = changed.get(field, texts[field])
            if not translation.strip():
                raise InputError(
                    f"{field} could not be translated: the Thai {_shown(text[start:end])} "
                    f"came back empty; write it in English, or send translate_prompt=false"
                )
            changed[field] = text[:start] + translation + text[end:]
        for field in texts:
            if field in changed:
                print(
                    f"{field} translated from Thai; the model reads: {changed[field]!r}", flush=True
                )
        schedule = tuple(
            (frame, changed.get(f"prompt_schedule segment {number}", text))
            for number, (frame, text) in enumerate(request.prompt_schedule, start=1)
        )
        fields = {
            field: text
            for field, text in changed.items()
            if not field.startswith("prompt_schedule")
        }
        return dataclasses.replace(request, prompt_schedule=schedule, **fields)

    def check_readable(self, field: str, text: str) -> None:
        """Refuse text whose letters (Thai aside) are mostly not whole tokens of CLIP's
        vocabulary."""
        normalizer = self.clip_tokenizer.backend_tokenizer.normalizer  # CLIP's own: NFC, lower case
        normalized = normalizer.normalize_str(text) if normalizer is not None else text
        letters = [
            character for character in normalized if is_letter(character) and not is_thai(character)
        ]
        if not letters:
            return
        distinct = sorted(set(letters))
        # A letter CLIP has learnt is one token; one it has not falls apart into its UTF-8 bytes.
        pieces = self.clip_tokenizer(distinct, add_special_tokens=False).input_ids
        unreadable = {letter for letter, ids in zip(distinct, pieces) if len(ids) != 1}
        missing = sum(letter in unreadable for letter in letters)
        if missing and (len(letters) - missing) / len(letters) < MIN_READABLE_SHARE:
            examples = "".join(sorted(unreadable)[:5])
            raise InputError(
                f"{field} must be in a language the model reads: got {_shown(text)}, whose letters "
                f"are mostly ({missing} of {len(letters)}, e.g. {examples!r}) outside CLIP's "
                f"vocabulary. Supported: {SUPPORTED_LANGUAGES}. Write it in one of them, or send "
                f"translate_prompt=false to pass it to CLIP as written"
            )

    @torch.inference_mode()
    def translate(self, texts: list[str]) -> list[str]:
        """Thai to English, all parts of a request in one batch, with the model's own generation
        settings (beam search, as published in its generation_config.json)."""
        limit = self.tokenizer.model_max_length
        for text in texts:
            if len(self.tokenizer(text).input_ids) > limit:
                print(
                    f"Note: the Thai text {_shown(text)} is longer than the translator's {limit} "
                    f"tokens; the rest was not translated.",
                    flush=True,
                )
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True).to(
            self.device.torch_device
        )
        output = self.model.generate(**batch)
        # Decoded with the target (English) sentencepiece model: the output pieces are its pieces.
        return self.tokenizer.batch_decode(
            output, skip_special_tokens=True, use_source_tokenizer=False
        )
