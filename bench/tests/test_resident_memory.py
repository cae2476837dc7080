"""bench/resident_memory.py: the half-precision weights every resident model holds, counted on the
meta device."""

from __future__ import annotations

import pytest

from bench import resident_memory
from pipelines.inputs import TIERS


@pytest.fixture(scope="module")
def rows():
    return resident_memory.resident_rows()


def test_every_model_is_counted_once_in_the_precision_setup_holds_it_in(rows):
    assert len(rows) == len(resident_memory.COMPONENTS)
    # SDXL's first text encoder is SD 1.5's CLIP ViT-L object: listed, counted once.
    (shared,) = [row for row in rows if row.shared]
    assert shared.class_name == "CLIPTextModel" and shared.tier == 3
    width = {"float16": 2, "bfloat16": 2, "float32": 4}
    for row in rows:
        # Buffers (position ids, the motion modules' encodings, RoPE tables) add a little.
        expected = width[row.dtype] * row.parameters
        assert row.shared or 0 <= row.bytes - expected < 0.01 * row.bytes, row
    held_in = {row.class_name: row.dtype for row in rows}
    # Tiers 2 and 3 in float16; tier 4 as pipelines/tier4.py loads it: bfloat16, its VAE float32.
    assert held_in["UNet2DConditionModel"] == "float16"
    assert held_in["WanTransformer3DModel"] == held_in["UMT5EncoderModel"] == "bfloat16"
    assert held_in["AutoencoderKLWan"] == "float32"


def test_the_totals_add_up_with_the_draft_transformer_in_tier_4(rows):
    totals = resident_memory.totals(rows)
    tiers = [totals[label] for label in resident_memory.TIER_NAMES.values()]
    assert totals[resident_memory.EVERY_TIER] == (
        sum(t[0] for t in tiers),
        sum(t[1] for t in tiers),
    )
    # Setup loads the draft transformer with tier 4 (pipelines/tier4.py), so tier 4 holds two
    # transformers of the same size: the draft is a fine-tune of the standard one.
    transformers = [r for r in rows if r.class_name == "WanTransformer3DModel"]
    assert len(transformers) == 2 and {r.tier for r in transformers} == {4}
    assert transformers[0].bytes == transformers[1].bytes
    tier4 = totals[resident_memory.TIER_NAMES[4]]
    assert tier4[1] == sum(r.bytes for r in rows if r.tier == 4)


def test_the_wan_transformer_is_the_5b_of_its_name(rows):
    for transformer in [r for r in rows if r.class_name == "WanTransformer3DModel"]:
        assert 4.5e9 < transformer.parameters < 5.5e9


def test_the_table_lists_every_model_and_every_total(rows):
    text = resident_memory.table(rows)
    for row in rows:
        assert f"| {row.tier} | {row.name} | {row.class_name} |" in text
    for label in resident_memory.totals(rows):
        assert f"| **{label}** |" in text
    # Every tier the product serves is in the table.
    assert {row.tier for row in rows} >= set(TIERS)
