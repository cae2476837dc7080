"""bench/resident_memory.py: the half-precision weights every resident model holds, counted on the
meta device."""

from __future__ import annotations

import pytest

from bench import resident_memory
from pipelines.inputs import TIERS


@pytest.fixture(scope="module")
def rows():
    return resident_memory.resident_rows()


def test_every_model_is_counted_once_at_two_bytes_a_parameter(rows):
    assert len(rows) == len(resident_memory.COMPONENTS)
    # SDXL's first text encoder is SD 1.5's CLIP ViT-L object: listed, counted once.
    (shared,) = [row for row in rows if row.shared]
    assert shared.class_name == "CLIPTextModel" and shared.tier == 3
    for row in rows:
        # Half precision: two bytes per parameter; buffers (position ids, the motion modules'
        # encodings, RoPE tables) add a little.
        assert row.shared or 0 <= row.bytes - 2 * row.parameters < 0.01 * row.bytes, row


def test_the_totals_add_up_and_the_draft_transformer_stands_apart(rows):
    totals = resident_memory.totals(rows)
    tiers = [totals[label] for label in resident_memory.TIER_NAMES.values()]
    every_tier = totals[resident_memory.EVERY_TIER]
    assert every_tier == (sum(t[0] for t in tiers), sum(t[1] for t in tiers))
    (draft,) = [row for row in rows if row.optional]
    assert draft.class_name == "WanTransformer3DModel" and draft.tier == 4
    assert totals[resident_memory.EVERY_MODEL] == (
        every_tier[0] + draft.parameters,
        every_tier[1] + draft.bytes,
    )
    # The draft is a fine-tune of the standard transformer: the same size.
    standard = next(r for r in rows if r.class_name == "WanTransformer3DModel" and not r.optional)
    assert (standard.parameters, standard.bytes) == (draft.parameters, draft.bytes)


def test_the_wan_transformer_is_the_5b_of_its_name(rows):
    (transformer,) = [r for r in rows if r.class_name == "WanTransformer3DModel" and not r.optional]
    assert 4.5e9 < transformer.parameters < 5.5e9


def test_the_table_lists_every_model_and_every_total(rows):
    text = resident_memory.table(rows)
    for row in rows:
        assert f"| {row.tier} | {row.name} | {row.class_name} |" in text
    for label in resident_memory.totals(rows):
        assert f"| **{label}** |" in text
    # Every tier the product serves is in the table.
    assert {row.tier for row in rows} >= set(TIERS)
