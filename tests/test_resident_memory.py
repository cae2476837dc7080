"""scripts/resident_memory.py: the fp16 weights every resident model holds, counted on the meta
device."""

from __future__ import annotations

from scripts import resident_memory


def test_every_model_is_counted_once_at_two_bytes_a_parameter():
    rows = resident_memory.resident_rows()
    assert len(rows) == len(resident_memory.COMPONENTS)
    # SDXL's first text encoder is SD 1.5's CLIP ViT-L object: listed, counted once.
    (shared,) = [row for row in rows if row.shared]
    assert shared.class_name == "CLIPTextModel" and shared.tier == 3
    held = [row for row in rows if not row.shared]
    parameters = sum(row.parameters for row in held)
    # The counts tests/test_benchmark.py checks, CLIP-L once, and the safety checker (304.0 M).
    assert round(parameters / 1e5) == 73876
    totals = resident_memory.totals(rows)
    every_parameters, every = totals["every model resident"]
    assert every_parameters == parameters
    assert every == totals["tier 2"][1] + totals["tier 3 (without the shared CLIP ViT-L)"][1]
    # fp16: two bytes per parameter; buffers (position ids, the motion modules' encodings) add
    # ~1 MB.
    assert 0 <= every - 2 * parameters < 2e6
    table = resident_memory.table(rows)
    assert "| | **every model resident** | | 7,387.6 M | **14.78** | **13.76** |" in table
