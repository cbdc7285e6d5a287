"""Score consistency across photo size: a BIQ2021 photo against its 2x, 4x and 8x Lanczos upscales.

    python bench/size_consistency.py --part test --count 100            # the shipped model as shipped
    python bench/size_consistency.py --part val --count 150 \\
        --working-sizes 384,512,768,1024 --factors 2,4                 # choosing the working size

The shipped model scores each photo (its file, as `lmiqa score` does) and each upscale
(Pillow's Lanczos, as uint8 pixels; `--jpeg` also as a JPEG q90 file, the reduced-size
decode path). Reported per working size and factor: median and 95th percentile of
|score(upscale) - score(photo)| (targets <= 0.03 / <= 0.08), and SRCC of the scores
against the photos' MOS at the original size and at each factor (a working size below
the training photos' 512 px changes the original-size score, one far above it lets the
upscales drift). `--working-sizes` replaces the shipped model's working long side
(0: native pixels, the rule before working sizes). BIQ2021 photos are read from
--data-root (never copied); `--part val` is the cpu-photos run's validation part of
the official training split (500 photos), `--part test` the official test split.
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = "size_consistency"


def biq_records(root: str, part: str, count: int):
    """`count` records of BIQ2021's `part` (val: the cpu-photos run's split, seed 0, 5 %), evenly spread."""
    from keras_lmiqa import datasets
    from keras_lmiqa.datasets.splits import split_dataset

    dataset = datasets.load("biq2021", root)
    split = split_dataset(dataset, 0, 0.2, 0.05, use_official=True)
    records = split.records(dataset, part)
    step = max(1, len(records) // count)
    return records[::step][:count]


def shipped_with(working_long_side: int | None):
    """The shipped model, its working long side replaced (None: as shipped)."""
    import keras_lmiqa
    from keras_lmiqa.models.image_quality import image_quality_model

    model = keras_lmiqa.pretrained()
    if working_long_side is None:
        return model
    spec = dataclasses.replace(model.spec, working_long_side=working_long_side, window_rule="")
    return image_quality_model(model.branch, spec, model.info)


def main(argv=None):
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--data-root", default="/work/data/biq2021")
    p.add_argument("--part", default="test", choices=("train", "val", "test"))
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--factors", default="2,4,8")
    p.add_argument("--working-sizes", default="", help="comma list of working long sides (default: as shipped)")
    p.add_argument("--jpeg", action="store_true", help="also score each upscale as a JPEG q90 file's bytes")
    args = p.parse_args(argv)
    common.quiet_tensorflow()
    if args.quick:
        args.count, args.factors = 4, "2,4"
    import numpy as np
    from PIL import Image

    from keras_lmiqa import metrics

    report = common.Report(BENCH, args)
    factors = [int(f) for f in args.factors.split(",")]
    sizes = [int(s) for s in args.working_sizes.split(",")] if args.working_sizes else [None]
    records = biq_records(args.data_root, args.part, args.count)
    mos = np.array([r.mos for r in records])
    for size in sizes:
        scorer = shipped_with(size).scorer(batch_size=1)
        label = f"L={scorer.metadata['crops']['working_long_side']}"
        original = scorer.score([r.path for r in records])
        report.add(f"{label} srcc original", metrics.evaluate(original, mos)["srcc"], "",
                   f"SRCC of the original photos' scores against MOS ({args.part}, {len(records)})")
        for factor in factors:
            variants = {"pixels": []} | ({"jpeg": []} if args.jpeg else {})
            for record in records:
                photo = Image.open(record.path).convert("RGB")
                big = photo.resize((photo.width * factor, photo.height * factor), Image.LANCZOS)
                variants["pixels"].append(float(scorer.score([np.asarray(big)])[0]))
                if args.jpeg:
                    buffer = io.BytesIO()
                    big.save(buffer, "JPEG", quality=90)
                    variants["jpeg"].append(float(scorer.score([buffer.getvalue()])[0]))
            for kind, scores in variants.items():
                diff = np.abs(np.asarray(scores) - original)
                name = f"{label} {factor}x {kind}"
                report.add(f"{name} median |diff|", float(np.median(diff)), "score", "median |upscale - photo|",
                           target="<= 0.03")
                report.add(f"{name} p95 |diff|", common.percentile(diff.tolist(), 95), "score",
                           "95th percentile |upscale - photo|", target="<= 0.08")
                report.add(f"{name} srcc", metrics.evaluate(np.asarray(scores), mos)["srcc"], "",
                           "SRCC of the upscales' scores against the photos' MOS")
    report.table()


if __name__ == "__main__":
    main()
