"""pipelines/prompts.py in-process: where the Thai is, which scripts CLIP's vocabulary reads, and
what reaches the models. Through the server: tests/test_server_language_safety.py."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import CLIPTokenizer

from pipelines.common import pick_device
from pipelines.inputs import InputError, resolve_request
from pipelines.prompts import PromptTranslator, thai_spans
from scripts.make_tiny_weights import _byte_to_unicode
from weights import WEIGHT_SETS

THAI = "ฉากกลางคืน ฝนตกบนถนนในเมือง"


@pytest.fixture(scope="module")
def clip_tokenizer(tiny_weights_dir):
    return CLIPTokenizer.from_pretrained(
        WEIGHT_SETS["sd15"].path(tiny_weights_dir) / "tokenizer", model_max_length=77
    )


@pytest.fixture(scope="module")
def translator(tiny_weights_dir, clip_tokenizer):
    return PromptTranslator.load(tiny_weights_dir, pick_device(), clip_tokenizer)


def request(**inputs):
    return resolve_request({"prompt": "a kite", "seed": 1, **inputs})


@pytest.mark.parametrize(
    "text, runs",
    [
        (THAI, [THAI]),  # the space between Thai phrases stays inside the run
        ("ฉากกลางคืน, neon signs, ฝนตก 2 คน.", ["ฉากกลางคืน", "ฝนตก 2 คน"]),
        ("close-up: ใบหน้า (ร้องไห้) - slow", ["ใบหน้า (ร้องไห้"]),
        ("a kite over the sea", []),
        ("๒ คน ฿", ["๒ คน ฿"]),  # Thai digits and the baht sign are Thai too
    ],
)
def test_thai_runs_stop_at_the_letters_of_another_language(text, runs):
    assert [text[start:end] for start, end in thai_spans(text)] == runs


def test_thai_parts_are_translated_in_place_and_english_kept(translator, capsys):
    mixed = "ฉากกลางคืน, neon signs, ฝนตก"
    prepared = translator.prepare(request(prompt=mixed, negative_prompt="ภาพเบลอ"))
    first, second, blur = translator.translate(["ฉากกลางคืน", "ฝนตก", "ภาพเบลอ"])
    assert prepared.prompt == f"{first}, neon signs, {second}"
    assert prepared.negative_prompt == blur
    assert not thai_spans(prepared.prompt + prepared.negative_prompt)
    logs = capsys.readouterr().out
    assert f"prompt translated from Thai; the model reads: {prepared.prompt!r}" in logs
    assert (
        f"negative_prompt translated from Thai; the model reads: {prepared.negative_prompt!r}"
        in logs
    )


def test_the_translation_depends_on_the_thai(translator):
    """Different Thai, different English: the model reads the text it is given (also true of the
    tiny one)."""
    one, other = translator.translate(["แมวสีดำ", "รถไฟแล่นผ่านภูเขา"])
    assert one != other


def test_english_and_switched_off_requests_are_left_as_they_are(translator):
    english = request(prompt="a kite", negative_prompt="blurry")
    assert translator.prepare(english) is english
    as_written = request(prompt=THAI, translate_prompt=False)
    assert translator.prepare(as_written) is as_written
    image = request(tier=3, prompt="مشهد", image="https://example.com/a.png")  # SVD reads no text
    assert translator.prepare(image) is image


@pytest.mark.parametrize(
    "text",
    ["مشهد على الشاطئ عند الغروب", "Ночная сцена, дождь", "夜景，城市街道上的雨", "שלום עולם"],
)
def test_text_clip_cannot_read_is_refused_naming_the_field(translator, text):
    for field in ("prompt", "negative_prompt"):
        with pytest.raises(
            InputError, match=f"^{field} must be in a language the model reads: got "
        ) as error:
            translator.prepare(request(**{field: text}))
        assert "Supported: English, and Thai (translated to English in the container)" in str(
            error.value
        )


@pytest.mark.parametrize(
    "text",
    [
        "a kite over the sea 🎬🌊",  # emoji are no letters: nothing to judge
        "🎬🌊🐙",
        "Café scene in Zürich, señor Müller waits",  # a few letters CLIP's tiny vocabulary lacks
        "ฉากกลางคืน with a crème brûlée",  # Thai is translated, not judged
        "12:30, 4K, ...",
    ],
)
def test_english_with_some_other_letters_emoji_and_thai_pass(translator, text):
    translator.check_readable("prompt", text)


def test_the_judge_is_clips_vocabulary_not_a_list_of_scripts(tmp_path, translator):
    """Give a CLIP vocabulary whole tokens for Arabic letters, and Arabic text becomes readable."""
    text = "مشهد على الشاطئ"
    to_unicode = _byte_to_unicode()
    folder = WEIGHT_SETS["sd15"].path(tmp_path) / "tokenizer"
    tiny = translator.clip_tokenizer
    vocab = dict(tiny.get_vocab())
    merges = []
    for letter in sorted({c for c in text if c.isalpha()}):
        first, second = (to_unicode[byte] for byte in letter.encode())
        merges.append(f"{first} {second}</w>")  # a letter on its own is a whole word to CLIP
        vocab.setdefault(f"{first}{second}</w>", len(vocab))
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))
    readers = PromptTranslator(
        translator.tokenizer,
        translator.model,
        CLIPTokenizer.from_pretrained(folder),
        translator.device,
    )
    readers.check_readable("prompt", text)
    with pytest.raises(InputError):
        translator.check_readable("prompt", text)


def test_an_empty_translation_is_an_error_naming_the_field(tiny_weights_dir, clip_tokenizer):
    """A translator that ends every sentence at once (its end token made certain)."""
    silent = PromptTranslator.load(tiny_weights_dir, pick_device(), clip_tokenizer)
    with torch.no_grad():
        silent.model.final_logits_bias[0, silent.model.config.eos_token_id] = 1e4
    with pytest.raises(
        InputError, match=r"^prompt could not be translated: the Thai 'ฉากกลางคืน' came back empty"
    ):
        silent.prepare(request(prompt="ฉากกลางคืน"))


def test_schedule_segments_are_read_like_the_prompt(translator):
    """Each segment of a prompt_schedule is checked and translated as the prompt is."""
    from pipelines.inputs import InputError, resolve_request

    request = resolve_request(
        {
            "prompt": "a man in a red coat",
            "num_frames": 16,
            "prompt_schedule": "0: he opens the door | 8: ชายคนหนึ่งเดิน",
        }
    )
    prepared = translator.prepare(request)
    assert prepared.prompt == request.prompt and prepared.prompt_schedule[0] == (
        0,
        "he opens the door",
    )
    frame, text = prepared.prompt_schedule[1]
    assert (
        frame == 8
        and text.strip()
        and not any("\u0e00" <= character <= "\u0e7f" for character in text)
    )
    unreadable = resolve_request(
        {"prompt": "a kite", "num_frames": 16, "prompt_schedule": "0: a kite | 8: 風箏飛走了"}
    )
    with pytest.raises(InputError, match=r"^prompt_schedule segment 2 "):
        translator.prepare(unreadable)
