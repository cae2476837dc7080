"""Pack a verified weights directory into one tar archive for a CDN (what $WEIGHTS_URL points at).

    python -m scripts.pack_weights DIR OUT.tar [--tier 2|3]

Every file is checked against DIR/weights.lock.json first. Upload OUT.tar; a deployment with
WEIGHTS_URL=https://.../OUT.tar fetches it at setup (with pget when it is on PATH) and checks each
file against its own copy of the lock.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from weights import WEIGHT_TIERS, WeightsError
from weights_build import write_archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights_dir", type=Path)
    parser.add_argument("archive", type=Path)
    parser.add_argument("--tier", type=int, choices=WEIGHT_TIERS, help="only this tier's weights")
    args = parser.parse_args()
    try:
        count = write_archive(args.weights_dir, args.archive, args.tier)
    except WeightsError as error:
        sys.exit(f"error: {error}")
    size = args.archive.stat().st_size
    print(f"Packed {count} files ({size / 2**30:.2f} GiB) into {args.archive}")


if __name__ == "__main__":
    main()
