"""Batch scoring: `lmiqa score-batch` (Apache Beam, DirectRunner, 2 worker processes)
against `lmiqa score` (one process) on the same photos with the shipped model.

    score        `lmiqa score --pretrained M --skip-errors --json F DIR`
    score_batch  `lmiqa score-batch --input 'DIR/*' --output P --pretrained M`
                 (DirectRunner, --direct_num_workers 2, multi_processing)
Each is one command, timed from start to exit (start-up, model loading and writing
included), in its own process, alternating which runs first over the rounds; photos/s
is photos / wall seconds, median of the rounds. The scores of both are compared.
Target: score_batch photos/s >= 0.8 x score's.

Photos: the first --count files (sorted) of --images (default BIQ2021's 512 x 512 JPEGs),
linked into a temporary folder so both commands see exactly those files.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = "batch_scoring"
DEFAULT_IMAGES = "/work/data/biq2021/Images"


def _lmiqa(*argv: str) -> list[str]:
    return [sys.executable, "-m", "keras_lmiqa.cli", *argv]


def _timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB of the largest process of the command's tree:
    `common.run_measured`)."""
    with tempfile.TemporaryFile("w+") as errors:
        code, seconds, gigabytes = common.run_measured(command, stderr=errors)
        if code not in (0, 1):  # 1: some images could not be scored
            errors.seek(0)
            raise RuntimeError(f"{' '.join(command[:5])} ... failed ({code}): {errors.read()[-2000:]}")
    return seconds, gigabytes


def _single_scores(path: str) -> dict[str, float]:
    """{file name: score} of `lmiqa score --json` (6 decimals; its --csv keeps 4)."""
    return {os.path.basename(row["path"]): row["score"] for row in json.load(open(path, encoding="utf-8"))
            if row["score"] is not None}


def _batch_scores(paths: list[str]) -> dict[str, float]:
    scores = {}
    for path in paths:
        with open(path, newline="", encoding="utf-8") as handle:
            scores.update((os.path.basename(row["path"]), float(row["score"])) for row in csv.DictReader(handle)
                          if row["score"])
    return scores


def main(argv=None):
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--images", default=DEFAULT_IMAGES, help="folder of photos")
    p.add_argument("--count", type=int, default=500, help="photos scored by each command")
    p.add_argument("--workers", type=int, default=2, help="DirectRunner worker processes")
    p.add_argument("--pretrained", default=None, help="shipped model (default: the default one)")
    args = p.parse_args(argv)
    common.quiet_tensorflow()
    if args.quick:
        args.count = min(args.count, 40)
    rounds = common.repeats(args, full=1, quick=1)
    report = common.Report(BENCH, args)
    photos = sorted(glob.glob(os.path.join(args.images, "*")))[:args.count]
    if len(photos) < args.count:
        raise SystemExit(f"{args.images}: {len(photos)} files, fewer than --count {args.count}")
    model = ["--pretrained", args.pretrained] if args.pretrained else []
    with tempfile.TemporaryDirectory(prefix="lmiqa-bench-batch-") as scratch:
        folder = os.path.join(scratch, "photos")
        os.makedirs(folder)
        for path in photos:
            os.symlink(os.path.abspath(path), os.path.join(folder, os.path.basename(path)))
        commands = {
            "score": _lmiqa("score", *model, "--skip-errors", "--json", os.path.join(scratch, "score.json"), folder),
            "score_batch": _lmiqa("score-batch", "--input", os.path.join(folder, "*"),
                                  "--output", os.path.join(scratch, "batch", "part"), *model,
                                  "--", f"--direct_num_workers={args.workers}",
                                  "--direct_running_mode=multi_processing"),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        peak: dict[str, float] = dict.fromkeys(commands, 0.0)
        for round_index in range(rounds):
            order = list(commands) if round_index % 2 == 0 else list(reversed(commands))
            for name in order:
                seconds, gigabytes = _timed(commands[name])
                times[name].append(seconds)
                peak[name] = max(peak[name], gigabytes)
        single = _single_scores(os.path.join(scratch, "score.json"))
        batch = _batch_scores(sorted(glob.glob(os.path.join(scratch, "batch", "part-*.csv"))))
    rate = {name: len(photos) / common.median(seconds) for name, seconds in times.items()}
    difference = max(abs(single[name] - batch[name]) for name in single) if single.keys() == batch.keys() \
        else float("nan")
    report.add("score photos/s", rate["score"], "photos/s", f"`lmiqa score`, one process, {len(photos)} photos",
               seconds=[round(s, 1) for s in times["score"]])
    report.add("score_batch photos/s", rate["score_batch"], "photos/s",
               f"`lmiqa score-batch`, DirectRunner, {args.workers} worker processes, {len(photos)} photos",
               seconds=[round(s, 1) for s in times["score_batch"]])
    report.add("score_batch / score", rate["score_batch"] / rate["score"], "x", "photos/s ratio, end to end",
               baseline="score photos/s", target=">= 0.8")
    report.add("score peak RSS", peak["score"], "GB", "`lmiqa score`'s process")
    report.add("score_batch peak RSS per process", peak["score_batch"], "GB",
               "the largest process of `lmiqa score-batch` (a worker, or the launcher)")
    report.add("max |score difference|", difference, "", "the same photo in both outputs (NaN: different sets)",
               target="<= 1e-6", photos=len(single))
    report.table()


if __name__ == "__main__":
    main()
