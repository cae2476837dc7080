"""bench/reliability.py: its report from what the checks recorded, and a short soak through Cog's
server. The checks themselves are the suite's own tests (those marked `reliability`); here their
results come from a junit XML pytest wrote, kept in bench/tests/fixtures/junit.xml, so
pytest does not run inside pytest. It was recorded with

    CANCEL=tests/test_server_reliability.py::test_cancel_in_any_stage_ends_canceled_promptly
    python -m pytest --junitxml=bench/tests/fixtures/junit.xml \\
        "$CANCEL[tier2-denoising]" "$CANCEL[tier3-keyframe]" tests/test_fuzz.py \\
        tests/test_inputs.py::test_seed_limits_are_inclusive \\
        tests/test_images.py::test_a_1x1_image_fills_the_frame
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ElementTree

import pytest

from bench import reliability
from scripts import REPO

RECORDED = REPO / "bench" / "tests" / "fixtures" / "junit.xml"
CANCEL = "test_cancel_in_any_stage_ends_canceled_promptly"
FUZZ = "test_any_request_succeeds_or_fails_naming_a_field"


def test_the_checks_are_the_tests_carrying_the_declared_marker():
    # `pytest -m` with a marker no test carries selects nothing, silently: it must be the declared
    # one (the checks carry it; --strict-markers refuses any other).
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]
    declared = [line.split(":")[0] for line in settings["ini_options"]["markers"]]
    assert reliability.MARKER in declared


def test_cases_are_counted_per_test_function_with_what_the_tests_recorded():
    found = reliability.read_junit(RECORDED)
    assert found["checks"] == [
        (FUZZ, 2, 2, "test_fuzz"),
        ("test_a_1x1_image_fills_the_frame", 1, 1, "test_images"),
        ("test_seed_limits_are_inclusive", 1, 1, "test_inputs"),
        (CANCEL, 2, 2, "test_server_reliability"),
    ]
    assert reliability.failed_cases(found) == 0
    assert found["cancels"] == {"tier2-denoising": 0.34, "tier3-keyframe": 0.36}
    # Each fuzzed request counts once in every input class it held, by its outcome.
    assert found["fuzz"]["seed: 0"] == {
        "failed naming the field": 6,
        "refused by the schema, naming the field": 6,
        "succeeded": 7,
    }
    assert found["fuzz"]["image: an unreachable URL (Cog's download)"] == {
        "refused by Cog's own check (Cog left an empty temp file)": 12
    }


def test_a_failed_errored_or_skipped_case_is_not_counted_as_passed(tmp_path):
    tree = ElementTree.parse(RECORDED)
    cases = {case.get("name"): case for case in tree.iter("testcase")}
    ElementTree.SubElement(cases["test_seed_limits_are_inclusive"], "failure", message="assert")
    ElementTree.SubElement(cases[f"{CANCEL}[tier3-keyframe]"], "error", message="setup")
    ElementTree.SubElement(cases[f"{FUZZ}[with the schema]"], "skipped", message="skip")
    junit = tmp_path / "junit.xml"
    tree.write(junit)

    found = reliability.read_junit(junit)
    assert [row[:3] for row in found["checks"]] == [
        (FUZZ, 2, 1),
        ("test_a_1x1_image_fills_the_frame", 1, 1),
        ("test_seed_limits_are_inclusive", 1, 0),
        (CANCEL, 2, 1),
    ]
    assert reliability.failed_cases(found) == 3  # what makes the script exit 1
    report = tmp_path / "RELIABILITY.md"
    reliability.write_report(report, found, None)
    assert "\n3 of 6 cases passed.\n" in report.read_text()


def test_checks_report_has_the_counts_cancel_times_and_fuzz_tally(tmp_path):
    report = tmp_path / "RELIABILITY.md"
    reliability.write_report(report, reliability.read_junit(RECORDED), None)
    lines = report.read_text().splitlines()
    assert lines[2].startswith("Written by `python -m bench.reliability` on ")
    assert f"| {FUZZ} | test_fuzz | 2 | 2 |" in lines
    assert "6 of 6 cases passed." in lines
    assert "| tier2-denoising | 0.34 s |" in lines and "| tier3-keyframe | 0.36 s |" in lines
    # Columns: requests, then reliability.FUZZ_OUTCOMES in order.
    assert "| seed: 0 | 19 | 7 | 6 | 6 | 0 | 0 |" in lines
    assert "## Soak" not in report.read_text()


def test_soak_figures_come_from_the_samples_in_order():
    # Resident memory (MiB) after the warm-up, then after each of 12 predictions: the first is not
    # the lowest, the last not the highest, so each figure shows which sample it was taken from.
    rss = [
        820.0,
        801.0,
        805.0,
        850.4,
        812.0,
        810.0,
        811.0,
        812.0,
        813.0,
        814.0,
        815.6,
        816.0,
        830.0,
    ]
    latencies = {  # seconds, by kind of request, in the order they ran
        0: [1.0, 1.0, 1.0, 2.0, 2.0, 2.0],  # a third is two runs: 1.0 → 2.0, twice as slow
        1: [0.5, 0.6, 0.7],  # 0.5 → 0.7
        2: [0.004, 0.04],  # refused in milliseconds: shown, but left out of the ratio
        3: [3.0],  # one run has no first and last third
    }
    outcomes = {"succeeded": 10, "failed": 2}
    figures = reliability.soak_figures(
        {"MALLOC_ARENA_MAX": "1"}, outcomes, rss, [None] * 13, latencies
    )
    assert figures["count"] == 12 and figures["outcomes"] == outcomes
    assert (figures["rss_start"], figures["rss_end"], figures["rss_max"]) == (820.0, 830.0, 850.4)
    assert figures["rss_every_10"] == [
        820,
        816,
    ]  # the warm-up's sample, then the tenth prediction's
    assert figures["gpu_every_10"] is None
    assert figures["latency_ratio"] == pytest.approx(1.7)  # the median of 2.0 and 1.4
    assert figures["latency_by_kind"] == ["1000 → 2000", "500 → 700", "4 → 40"]

    gpu = [2000.0 + i for i in range(13)]
    assert reliability.soak_figures({}, outcomes, rss, gpu, latencies)["gpu_every_10"] == [
        2000,
        2010,
    ]

    section = "\n".join(reliability.soak_section(figures))
    assert "## Soak: 12 mixed predictions in a row on one server" in section
    assert (
        "- worker resident memory: 820 MiB after warm-up (one request of each kind), 830 MiB at "
        "the end, 850 MiB at most"
    ) in section
    assert "median over the kinds that run a model): 1.70×" in section
    assert "- worker GPU memory: not measured (the machine has no NVIDIA GPU)" in section
    assert reliability.command_line(figures) == (
        "python -m bench.reliability --soak 12 --server-env MALLOC_ARENA_MAX=1"
    )


def test_soak_report_has_outcomes_memory_and_latency(tmp_path):
    report = tmp_path / "RELIABILITY.md"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.reliability",
            "--skip-checks",
            "--soak",
            "12",
            "--out",
            str(report),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )
    text = report.read_text()
    assert "## Soak: 12 mixed predictions" in text
    outcomes = ast.literal_eval(re.search(r"outcomes: (\{.*\})", text).group(1))
    assert outcomes == {
        "succeeded": 7,
        "failed": 4,
        "canceled": 1,
    }  # of seven kinds: two bad, one cancelled
    start, end, peak = map(
        float,
        re.search(
            r"(\d+) MiB after warm-up \(one request of each kind\), (\d+) MiB at the end, "
            r"(\d+) MiB at most",
            text,
        ).groups(),
    )
    every_10 = ast.literal_eval(
        re.search(r"resident memory every 10 predictions \(MiB\): (\[.*\])", text).group(1)
    )
    # Measured in MiB: the worker holds torch and the tiny models, some hundreds of MiB (in KiB or
    # bytes the figures would be a thousand times larger or more).
    assert 100 < start < 16 * 1024
    # One series of samples: the warm-up's is the first of every 10, and none is above the peak.
    assert len(every_10) == 2 and every_10[0] == start
    assert max(every_10) <= peak and end <= peak
    assert re.search(
        r"first third of each kind of request.s runs \(median over the kinds that run a model\): "
        r"\d+\.\d\d×",
        text,
    )
    # GPU memory is reported where nvidia-smi can read it, and said to be unmeasured elsewhere.
    if shutil.which("nvidia-smi"):
        assert re.search(r"worker GPU memory every 10 predictions \(MiB, nvidia-smi\): \[\d+", text)
    else:
        assert "worker GPU memory: not measured (the machine has no NVIDIA GPU)" in text
