"""Fetch the weights ahead of time (for baking into an image or a local cache), then verify them.

    python -m scripts.download_weights [--tier 2|3] [--dir weights] [--url URL] [--endpoint URL]

From the Hugging Face Hub by default, at the commit weights.lock.json records (the token, for the
gated SVD repo, from $HF_TOKEN), or from a mirror with --url / $WEIGHTS_URL: a folder laid out like
the weights directory, or one .tar archive of it (fetched with pget when it is on PATH). Files
already present are not fetched again, so a second run makes no request; everything is checked
against weights.lock.json, which records new files on their first download.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from weights import WEIGHT_TIERS, WeightsError, weights_dir
from weights_fetch import HF_TOKEN_ENV, WEIGHTS_URL_ENV, fetch_and_verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", type=int, choices=WEIGHT_TIERS, help="only this tier's weights")
    parser.add_argument(
        "--dir",
        type=Path,
        default=weights_dir(),
        help="weights directory (default: $WEIGHTS_DIR or ./weights)",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get(WEIGHTS_URL_ENV),
        help="mirror instead of the Hub: a folder URL, or a .tar archive URL",
    )
    parser.add_argument(
        "--endpoint", default=None, help="Hub endpoint (default: huggingface.co or $HF_ENDPOINT)"
    )
    args = parser.parse_args()
    try:
        fetched = fetch_and_verify(
            args.dir,
            args.tier,
            base_url=args.url,
            endpoint=args.endpoint,
            token=os.environ.get(HF_TOKEN_ENV),
            progress=True,
        )
    except WeightsError as error:
        sys.exit(f"error: {error}")
    print(f"{len(fetched)} files fetched; every file present and matching the lock in {args.dir}")


if __name__ == "__main__":
    main()
