"""Pin a weights directory: write DIR/weights.lock.json with each required file's size and sha256.

    python -m scripts.lock_weights DIR

Run it once on a download you trust; from then on setup refuses any file that differs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from weights import missing_files
from weights_build import write_lock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights_dir", type=Path)
    args = parser.parse_args()
    missing = missing_files(args.weights_dir)
    if missing:
        print(
            f"Note: {len(missing)} required files are missing (first: {missing[0]}); "
            "locking the rest."
        )
    print(f"Wrote {write_lock(args.weights_dir)}")


if __name__ == "__main__":
    main()
