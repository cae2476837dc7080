"""bench/resident_memory.py: the half-precision weights every resident model holds, counted on the
meta device."""

from __future__ import annotations

import pytest

from bench import resident_memory
from bench.resident_memory import GB
from pipelines.inputs import TIERS
from scripts import REPO


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


def test_the_publishers_table_holds_the_counts_of_this_program(rows):
    """docs/PUBLISHING.md's "Which GPU" table is this program's, in shorter words: each model's
    tier, precision, parameters and GB, and the totals, must be the ones it counts, so a change of
    config or precision that is not copied there fails here."""
    page = (REPO / "docs" / "PUBLISHING.md").read_text()
    section = page.split("| tier | model | held in | parameters | GB |", 1)[1].split("\n\n", 1)[0]
    cells = [
        [cell.strip().strip("*") for cell in line.strip("|").split("|")]
        for line in section.strip().splitlines()[1:]
    ]
    models = [(c[0], c[2], c[3], c[4]) for c in cells if c[0]]
    assert models == [
        (str(r.tier), r.dtype, f"{r.parameters / 1e6:,.1f} M", f"{r.bytes / GB:.2f}")
        for r in rows
        if not r.shared  # SDXL's first text encoder is tier 2's, held once
    ]
    totals = resident_memory.totals(rows)
    two, three, four = (totals[resident_memory.TIER_NAMES[tier]] for tier in (2, 3, 4))
    expected = {
        "tiers 2 and 3": (two[0] + three[0], two[1] + three[1]),
        "tier 4": four,
        resident_memory.EVERY_TIER: totals[resident_memory.EVERY_TIER],
    }
    assert {c[1]: (c[3], c[4]) for c in cells if not c[0]} == {
        label: (f"{parameters / 1e6:,.1f} M", f"{size / GB:.2f}")
        for label, (parameters, size) in expected.items()
    }
