"""The last step of `make demo`: serve an export over gRPC, score demo images, stop.

    python -m keras_lmiqa.serving.demo --export-dir exports/lmiqa [--port 8500]

Starts the development server on 127.0.0.1, scores one held-out reference's images
(pristine-looking to heavily distorted) through `keras_lmiqa.serving.Client`, prints
each image's label beside its predicted score, and stops the server.
"""

from __future__ import annotations

import argparse
import os
import sys

from keras_lmiqa import datasets
from keras_lmiqa.errors import LmiqaError
from keras_lmiqa.serving.client import Client
from keras_lmiqa.serving.local_server import LocalServer


def demo_images(count: int = 8, run_dir: str | None = None) -> list:
    """`count` records of one demo reference, spanning its label range.

    With `run_dir`, the reference comes from that run's test split (never trained on).
    """
    dataset = datasets.load("demo")
    groups = dataset.groups
    if run_dir and os.path.exists(os.path.join(run_dir, "test_predictions.csv")):
        import csv

        with open(os.path.join(run_dir, "test_predictions.csv"), encoding="utf-8") as handle:
            groups = [row["group"] for row in csv.DictReader(handle)] or groups
    records = sorted((r for r in dataset if r.group == groups[0]), key=lambda r: -r.mos)
    step = max(1, (len(records) - 1) // (count - 1))
    return records[::step][:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export-dir", required=True)
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--run-dir", help="training run folder: score a reference from its test split")
    args = parser.parse_args(argv)
    try:
        records = demo_images(run_dir=args.run_dir)
        with LocalServer(args.export_dir, port=args.port) as server:
            print(f"serving {args.export_dir} (versions {server.versions()}) on 127.0.0.1:{server.port}")
            with Client(f"127.0.0.1:{server.port}") as client:
                client.wait_until_available(timeout=60)
                details = client.score_details([r.path for r in records])
        print(f"{'image':<44} {'label (MOS)':>11} {'predicted MOS':>14} {'score':>7}")
        for record, result in zip(records, details):
            name = os.path.basename(record.path)
            print(f"{name:<44} {record.mos:>11.3f} {float(result['mos']):>14.3f} {float(result['score']):>7.3f}")
        print("server stopped")
        return 0
    except LmiqaError as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
