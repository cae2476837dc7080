"""bench/crossover.py: the volume from which a dedicated GPU is cheaper, read from a benchmark.json
written here in the shape bench/benchmark.py writes it."""

from __future__ import annotations

import json
import math
import re

from bench.crossover import (
    REPLICATE_H100_DOLLARS_PER_SECOND,
    SECONDS_PER_DAY,
    Dedicated,
    crossover,
    main,
)


def write_benchmark(path, seconds_by_tier: dict[str, float], smoke: bool = False):
    """The fields of bench/benchmark.py's benchmark.json that the crossover reads."""
    path.write_text(
        json.dumps(
            dict(
                date="2026-01-01",
                machine="NVIDIA H100 80GB HBM3, torch 2.14.1, CUDA 13.0, gpu-node",
                smoke=smoke,
                tiers={
                    tier: dict(ours_seconds=seconds, stock_seconds=2 * seconds)
                    for tier, seconds in seconds_by_tier.items()
                },
            )
        )
    )
    return path


def daily_costs(videos: int, seconds: float, hourly: float) -> tuple[float, float]:
    """Replicate's bill for a day of `videos`, and one always-on GPU's."""
    return videos * seconds * REPLICATE_H100_DOLLARS_PER_SECOND, 24 * hourly


def test_from_the_volume_it_reports_one_dedicated_gpu_is_cheaper_and_not_before(tmp_path):
    benchmark = write_benchmark(tmp_path / "benchmark.json", {"2": 3.0, "3": 11.0})
    out = tmp_path / "crossover.md"
    text = main(["--benchmark", str(benchmark), "--hourly", "k8s-h100=4.10", "--out", str(out)])
    assert out.read_text() == text and "measured 2026-01-01 on NVIDIA H100" in text
    row = next(line for line in text.splitlines() if line.startswith("| k8s-h100 "))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # name, $ per hour, busy share, then one column per tier in the order of the header
    header = next(line for line in text.splitlines() if line.startswith("| dedicated GPU"))
    tiers = re.findall(r"tier (\d)", header)
    assert tiers == ["2", "3"]
    for tier, cell in zip(tiers, cells[3:5], strict=True):
        videos = int(cell.replace(",", ""))
        seconds = {"2": 3.0, "3": 11.0}[tier]
        replicate, dedicated = daily_costs(videos, seconds, 4.10)
        assert dedicated <= replicate
        replicate, dedicated = daily_costs(videos - 1, seconds, 4.10)
        assert dedicated > replicate
        assert videos * seconds <= SECONDS_PER_DAY  # one GPU can make them
    # A slower tier needs fewer videos a day to fill the GPU's bill.
    assert int(cells[4].replace(",", "")) < int(cells[3].replace(",", ""))


def test_the_busy_share_does_not_depend_on_the_seconds_per_video():
    gpu = Dedicated("gpu", 2.0, "test")
    fast, slow = crossover(gpu, {"2": 1.0}, 0.001), crossover(gpu, {"2": 4.0}, 0.001)
    assert math.isclose(fast.busy_share, slow.busy_share)
    assert math.isclose(fast.videos_per_day["2"], 4 * slow.videos_per_day["2"])
    # At the crossover volume the GPU is busy exactly that share of the day.
    assert math.isclose(slow.videos_per_day["2"] * 4.0 / SECONDS_PER_DAY, slow.busy_share)


def test_a_gpu_dearer_per_hour_than_replicates_busy_hour_is_never_cheaper(tmp_path):
    benchmark = write_benchmark(tmp_path / "benchmark.json", {"2": 3.0})
    replicate_hourly = REPLICATE_H100_DOLLARS_PER_SECOND * 3600
    text = main(["--benchmark", str(benchmark), "--hourly", f"dear={replicate_hourly * 1.01}"])
    row = next(line for line in text.splitlines() if line.startswith("| dear "))
    assert "never cheaper" in row and "| never " in row


def test_without_a_gpu_measurement_no_volume_is_given_only_the_busy_share(tmp_path):
    smoke = write_benchmark(tmp_path / "smoke.json", {"2": 0.4, "3": 0.9}, smoke=True)
    for benchmark in (smoke, tmp_path / "absent.json"):
        text = main(["--benchmark", str(benchmark), "--hourly", "k8s=3.0"])
        assert "not measured yet" in text and "python -m bench.benchmark" in text
        assert "videos a day from which" not in text  # no tier column without a GPU figure
        row = next(line for line in text.splitlines() if line.startswith("| k8s "))
        share = float(re.search(r"\| (\d+)% \|", row).group(1)) / 100
        assert math.isclose(share, 3.0 / 3600 / REPLICATE_H100_DOLLARS_PER_SECOND, abs_tol=0.005)


def test_a_malformed_price_is_refused_naming_the_option(tmp_path, capsys):
    for bad in ("k8s", "k8s=", "k8s=-1", "=3"):
        try:
            main(["--benchmark", str(tmp_path / "absent.json"), "--hourly", bad])
        except SystemExit as exit:
            assert exit.code == 2
        else:
            raise AssertionError(f"--hourly {bad!r} was accepted")
        assert "--hourly must be NAME=DOLLARS_PER_HOUR" in capsys.readouterr().err
