"""bench/thai_tokens.py on SentencePiece models the test trains: what it counts, and its report."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import sentencepiece

from bench import thai_tokens
from scripts import REPO


def train(folder, sentences: list[str], vocab_size: int):
    """A unigram SentencePiece model as UMT5's is (spiece.model), on `sentences` only."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences * 20),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        unk_id=2,
        bos_id=-1,
        eos_id=1,
        pad_id=0,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(model.getvalue())
    return folder


THAI = [th for th, _ in thai_tokens.PROMPTS]
ENGLISH = [en for _, en in thai_tokens.PROMPTS]


@pytest.fixture(scope="module")
def english_only(tmp_path_factory):
    return thai_tokens.Tokenizer(train(tmp_path_factory.mktemp("en"), ENGLISH, 300))


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    return thai_tokens.Tokenizer(train(tmp_path_factory.mktemp("both"), THAI + ENGLISH, 400))


def test_a_vocabulary_without_thai_reads_thai_as_unknown(english_only):
    thai = thai_tokens.summary([thai_tokens.cut(english_only, text) for text in THAI])
    english = thai_tokens.summary([thai_tokens.cut(english_only, text) for text in ENGLISH])
    # Thai letters are unknown (digits, quotes and the English terms two prompts mix in are not).
    assert thai["unknown_character_share"] > 0.9 and thai["nfkc_round_trips"] == 0
    assert thai["unknown_share"] > 0
    assert english["unknown_character_share"] == english["unknown_share"] == 0
    assert english["exact_round_trips"] == len(ENGLISH)


def test_a_vocabulary_with_thai_cuts_it_without_loss(both):
    cuts = [thai_tokens.cut(both, text) for text in THAI]
    thai = thai_tokens.summary(cuts)
    assert thai["unknown_share"] == thai["unknown_character_share"] == 0
    assert thai["nfkc_round_trips"] == len(THAI)
    for one in cuts:
        assert one.pieces_per_character == len(one.pieces) / one.characters
        assert 0 <= one.single_characters <= len(one.pieces)


def test_nfkc_is_told_apart_from_an_exact_round_trip(both):
    """SentencePiece normalises NFKC: SARA AM (U+0E33) comes back as NIKHAHIT + SARA AA."""
    with_sara_am = thai_tokens.cut(both, "น้ำ")
    assert with_sara_am.nfkc_round_trip and not with_sara_am.exact_round_trip


def test_the_report_names_the_tokenizer_and_every_prompt(both, tmp_path):
    out = tmp_path / "THAI.md"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.thai_tokens",
            "--tokenizer",
            str(both.path.parent),
            "--out",
            str(out),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    text = out.read_text()
    assert "NOT google/umt5-xxl's tokenizer" in text  # trained by the test: its hash is not UMT5's
    assert "| Thai | " in text and "| English | " in text
    for number in range(1, len(thai_tokens.PROMPTS) + 1):
        assert f"\n| {number} | " in text


def test_a_folder_without_a_tokenizer_is_refused_naming_the_option(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench.thai_tokens", "--tokenizer", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0 and f"--tokenizer {tmp_path}: no spiece.model" in result.stderr
