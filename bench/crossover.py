"""At what volume of videos a day a GPU of your own gets cheaper than Replicate's per-second price.

    python -m bench.crossover                                  # bench/reports/benchmark.json
    python -m bench.crossover --hourly k8s-h100=4.10 --out bench/reports/crossover.md

On Replicate a public model bills only the seconds its predictions run. A dedicated GPU (a RunPod
active worker, a Kubernetes node) bills every hour, busy or not. One always-on GPU costs
`hourly × 24` a day and Replicate `videos × seconds × price`, so the dedicated one is cheaper from

    videos a day = 24 × hourly / (seconds per video × Replicate's $/s)

as long as one GPU can make that many: at that volume it is busy `hourly / 3600 / Replicate's $/s`
of the day, whatever the seconds per video, and that share must be below 1 (a fleet of them is
cheaper whenever its GPUs are busy more than that share on average). The busy share needs no GPU
figure; the videos a day need the seconds per video that `python -m
bench.benchmark --out bench/reports` measures on a GPU, read here from its benchmark.json. A smoke
run's seconds (tiny weights on a CPU) say nothing about a GPU and are never used.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path

from scripts import REPO

BENCHMARK_JSON = REPO / "bench" / "reports" / "benchmark.json"
MEASURE_COMMAND = "python -m bench.benchmark --out bench/reports"
SECONDS_PER_DAY = 24 * 3600

# Replicate's per-second price for an H100 (`gpu-h100`, https://replicate.com/pricing), the GPU
# the benchmark targets. A public model pays it for prediction time only.
REPLICATE_H100_DOLLARS_PER_SECOND = 0.001525


@dataclass(frozen=True)
class Dedicated:
    """A GPU billed by the hour whether it is busy or not."""

    name: str
    dollars_per_hour: float
    source: str

    @property
    def dollars_per_second(self) -> float:
        return self.dollars_per_hour / 3600


# Published prices of an always-on H100 outside Replicate. RunPod Serverless "active workers" run
# 24/7 at a per-second price (H100 PRO, 80 GB: $0.00093/s; flex workers, billed only while a
# worker runs, $0.00116/s), https://docs.runpod.io/serverless/pricing. A Kubernetes cluster's
# price is its cloud's: pass it with --hourly NAME=DOLLARS.
DEDICATED = (
    Dedicated(
        "runpod-active-h100",
        0.00093 * 3600,
        "RunPod Serverless active worker, H100 PRO 80 GB, $0.00093/s "
        "(https://docs.runpod.io/serverless/pricing)",
    ),
)


@dataclass(frozen=True)
class Crossover:
    dedicated: Dedicated
    busy_share: float  # the share of a day one GPU must be busy for it to cost what Replicate does
    videos_per_day: dict[str, float]  # tier -> the volume from which the dedicated GPU is cheaper


def read_seconds_per_video(benchmark_json: Path) -> tuple[dict[str, float], str]:
    """Each tier's measured seconds per video (ours, at the defaults) and where they were measured,
    or no seconds and the reason when the file holds no GPU measurement."""
    if not benchmark_json.is_file():
        return {}, f"not measured yet: {benchmark_json.name} is absent (run `{MEASURE_COMMAND}`)"
    results = json.loads(benchmark_json.read_text())
    if results.get("smoke"):
        return {}, (
            f"not measured yet: {benchmark_json.name} is a CPU smoke run ({results['machine']}), "
            f"whose seconds say nothing about a GPU (run `{MEASURE_COMMAND}` on a GPU)"
        )
    seconds = {tier: row["ours_seconds"] for tier, row in results["tiers"].items()}
    return seconds, f"measured {results['date']} on {results['machine']}"


def crossover(
    dedicated: Dedicated, seconds_per_video: dict[str, float], replicate_per_second: float
) -> Crossover:
    busy_share = dedicated.dollars_per_second / replicate_per_second
    videos = {
        tier: (
            math.inf
            if busy_share >= 1
            else SECONDS_PER_DAY * dedicated.dollars_per_second / (seconds * replicate_per_second)
        )
        for tier, seconds in seconds_per_video.items()
    }
    return Crossover(dedicated, busy_share, videos)


def parse_hourly(text: str) -> Dedicated:
    name, separator, price = text.partition("=")
    try:
        dollars = float(price)
    except ValueError:
        dollars = math.nan
    if not separator or not name or not dollars > 0:
        raise argparse.ArgumentTypeError(
            f"--hourly must be NAME=DOLLARS_PER_HOUR with a positive price, e.g. k8s-h100=4.10; "
            f"got {text!r}"
        )
    return Dedicated(name, dollars, "given on the command line")


def report(
    results: list[Crossover], measured: str, replicate_per_second: float, when: datetime.date
) -> str:
    tiers = sorted({tier for result in results for tier in result.videos_per_day})
    lines = [
        f"# Cost crossover, {when.isoformat()}",
        "",
        f"Replicate: ${replicate_per_second}/s of prediction time "
        f"(${replicate_per_second * 3600:.2f} an hour of busy GPU). "
        f"Seconds per video: {measured}.",
        "",
        "| dedicated GPU | $ per hour | busy share of a day at which it costs what Replicate does "
        + "".join(f"| videos a day from which it is cheaper, tier {tier} " for tier in tiers)
        + "| price source |",
        "|---|---|---|" + "---|" * len(tiers) + "---|",
    ]
    for result in results:
        never = result.busy_share >= 1
        share = "never cheaper" if never else f"{result.busy_share:.0%}"
        lines.append(
            f"| {result.dedicated.name} | {result.dedicated.dollars_per_hour:.2f} | {share} "
            + "".join(
                "| never " if never else f"| {math.ceil(result.videos_per_day[tier]):,} "
                for tier in tiers
            )
            + f"| {result.dedicated.source} |"
        )
    if not tiers:
        lines += ["", f"Videos a day: {measured}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", type=Path, default=BENCHMARK_JSON)
    parser.add_argument(
        "--hourly",
        type=parse_hourly,
        action="append",
        default=[],
        metavar="NAME=DOLLARS",
        help="a dedicated GPU's price per hour (repeatable), compared besides the published ones",
    )
    parser.add_argument(
        "--replicate-per-second", type=float, default=REPLICATE_H100_DOLLARS_PER_SECOND
    )
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    seconds, measured = read_seconds_per_video(args.benchmark)
    results = [
        crossover(dedicated, seconds, args.replicate_per_second)
        for dedicated in (*DEDICATED, *args.hourly)
    ]
    text = report(results, measured, args.replicate_per_second, datetime.date.today())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text, end="")
    return text


if __name__ == "__main__":
    main()
