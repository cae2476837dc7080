"""Peak memory of long tier-2 clips on the CPU, as num_frames grows (tiny weights, fixed size).

    python -m bench.long_clip_memory --out bench/reports/BENCHMARKS.md  # 32, 64, 96 frames, 256×256
    python -m bench.long_clip_memory --frames 32 40 --size 64  # quicker, printed only

Each clip runs in a fresh process (so one clip's peak cannot hide another's) that loads tier 2
through the production loader and generates through `TextToVideo.generate`, the code a
prediction runs. It reports the process's resident memory after loading, and the peak above that
(Linux's VmHWM, reset after loading) while denoising and over the whole generation (denoising,
then decoding in 16-frame chunks). Clips over 32 frames go through FreeNoise, and its split
inference unless `--without-split-inference`, so the effect of split inference can be measured
too. With `--out FILE` the table, the date and the machine replace this script's own section of
FILE (a Markdown file), leaving the rest as it is.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts import REPO

SECTION = "## Long tier-2 clips: peak memory on the CPU"
MIB = 2**20


def process_memory(field: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/self/status, in bytes."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE).group(1)) * 1024


def measure_one(
    weights_dir: Path, num_frames: int, size: int, steps: int, split_inference: bool
) -> dict:
    """In this process: load tier 2, generate one clip, return what it held."""
    from pipelines import tier2
    from pipelines.common import pick_device
    from pipelines.inputs import resolve_request
    from pipelines.progress import Progress

    if not split_inference:
        tier2.SPLIT_INFERENCE = None
    text_to_video = tier2.TextToVideo.load(weights_dir, pick_device())
    request = resolve_request(
        dict(
            prompt="a lighthouse in a storm",
            num_frames=num_frames,
            width=size,
            height=size,
            num_inference_steps=steps,
            seed=1,
        )
    )

    class PeakWhileDenoising(Progress):
        """The progress bar, which also notes the peak at the end of each denoising step."""

        denoising_peak = 0

        def advance(self, stage: str, units: int = 1) -> None:
            if stage == "denoising":
                self.denoising_peak = process_memory("VmHWM")
            super().advance(stage, units)

    loaded = process_memory("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
    progress = PeakWhileDenoising(text_to_video.progress_units(request), stream=io.StringIO())
    started = time.monotonic()
    frames = text_to_video.generate(request, progress)
    return dict(
        num_frames=num_frames,
        size=size,
        steps=steps,
        free_noise=tier2.uses_free_noise(request),
        split_inference=split_inference and tier2.uses_free_noise(request),
        loaded_mib=loaded / MIB,
        denoising_peak_mib=(progress.denoising_peak - loaded) / MIB,
        generation_peak_mib=(process_memory("VmHWM") - loaded) / MIB,
        frames_mib=frames.nbytes / MIB,
        seconds=time.monotonic() - started,
    )


def measure(
    weights_dir: Path, num_frames: int, size: int, steps: int, split_inference: bool
) -> dict:
    """`measure_one` in a fresh Python process."""
    command = [
        sys.executable,
        "-m",
        "bench.long_clip_memory",
        "--child",
        "--weights",
        str(weights_dir),
        "--frames",
        str(num_frames),
        "--size",
        str(size),
        "--steps",
        str(steps),
    ] + ([] if split_inference else ["--without-split-inference"])
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {num_frames} frames failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    memory_gib = (
        int(re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text()).group(1)) / 2**20
    )
    import torch

    return (
        f"{model}, {os.cpu_count()} cores, {memory_gib:.0f} GiB RAM, "
        f"torch {torch.__version__}, {platform.node()}"
    )


def table(rows: list[dict]) -> str:
    lines = [
        "| num_frames | FreeNoise | split inference | after loading (MiB) "
        "| peak above it while denoising (MiB) "
        "| peak above it, whole generation (MiB) | the frames themselves (MiB) | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['num_frames']} | {'yes' if row['free_noise'] else 'no'} "
            f"| {'yes' if row['split_inference'] else 'no'} "
            f"| {row['loaded_mib']:.0f} | {row['denoising_peak_mib']:.0f} "
            f"| {row['generation_peak_mib']:.0f} "
            f"| {row['frames_mib']:.0f} | {row['seconds']:.0f} |"
        )
    return "\n".join(lines)


def section(rows: list[dict], command: str) -> str:
    size, steps = rows[0]["size"], rows[0]["steps"]
    return (
        f"{SECTION}\n\n"
        f"Measured {datetime.date.today().isoformat()} on {machine()}, with `{command}`: "
        f"tier 2 on tiny random weights at {size}×{size}, {steps} denoising "
        f"step{'s' * (steps != 1)} with guidance, each clip in a fresh process, through "
        f"`TextToVideo.generate`. Peaks are resident memory (VmHWM) above the level after "
        f"loading. The seconds are from a shared 2-core machine and are context, not a "
        f"benchmark.\n\n"
        f"{table(rows)}\n"
    )


def write_section(path: Path, text: str) -> None:
    """Replace this script's section of `path` (from its heading to the next `## `), or append
    it."""
    document = path.read_text() if path.exists() else ""
    start = document.find(SECTION)
    if start < 0:
        document = document.rstrip("\n") + "\n\n" + text
    else:
        following = document.find("\n## ", start + len(SECTION))
        rest = document[following + 1 :] if following >= 0 else ""
        document = document[:start] + text + ("\n" + rest if rest else "")
    path.write_text(document)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[32, 64, 96])
    parser.add_argument("--size", type=int, default=256, help="width and height (default 256)")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument(
        "--without-split-inference",
        action="store_true",
        help="FreeNoise without diffusers' split inference, to see what it saves",
    )
    parser.add_argument(
        "--both", action="store_true", help="clips over 32 frames with and without split inference"
    )
    parser.add_argument(
        "--weights", type=Path, help="tiny weights folder (default: written to a temp folder)"
    )
    parser.add_argument(
        "--out", type=Path, help="Markdown file whose section to write the table into"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(
            json.dumps(
                measure_one(
                    args.weights,
                    args.frames[0],
                    args.size,
                    args.steps,
                    not args.without_split_inference,
                )
            )
        )
        return 0

    with tempfile.TemporaryDirectory() as scratch:
        weights = args.weights
        if weights is None:
            from scripts.make_tiny_weights import make_tiny_weights

            weights = Path(scratch) / "tiny-weights"
            make_tiny_weights(weights)
        splits = [True, False] if args.both else [not args.without_split_inference]
        rows = []
        for num_frames in args.frames:
            for split in splits if num_frames > 32 else splits[:1]:
                rows.append(measure(weights, num_frames, args.size, args.steps, split))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    command = "python -m bench.long_clip_memory " + " ".join(
        arg for arg in (argv if argv is not None else sys.argv[1:])
    )
    text = section(rows, command.strip())
    print("\n" + text)
    if args.out:
        write_section(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
