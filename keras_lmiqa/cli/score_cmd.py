"""`lmiqa score`: quality scores of images, from a server or a local model.

    lmiqa score --server HOST:PORT IMAGE_OR_DIR...   # gRPC (TF Serving or `lmiqa serve`)
    lmiqa score --model PATH IMAGE_OR_DIR...         # in-process: model.keras or an export

Folders are walked for .jpg/.jpeg/.png/.bmp/.gif (any case), sorted. Prints a table
(path, score, mos; score is normalised quality in [0, 1], higher = better) or writes
`--csv FILE` / `--json FILE`. With `--skip-errors`, images the model rejects get an
empty score and their error instead of stopping the run (exit code 1).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys

PROGRESS_ABOVE = 50  # show progress for more images than this


def _server_rows(args, paths: list[str]) -> list[dict]:
    from keras_lmiqa.serving.client import Client

    def progress(done: int, total: int) -> None:
        print(f"\rscored {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    with Client(args.server, model_name=args.model_name, timeout=args.timeout, batch_size=args.batch_size) as client:
        details = client.score_details(paths, version=args.version,
                                       progress=progress if len(paths) > PROGRESS_ABOVE else None,
                                       on_error="nan" if args.skip_errors else "raise")
    return [{"path": p, "score": d["score"], "mos": d["mos"], "error": d["error"]} for p, d in zip(paths, details)]


def _local_rows(args, paths: list[str]) -> list[dict]:
    from keras_lmiqa.errors import ImageError
    from keras_lmiqa.scorer import load_scorer

    scorer = load_scorer(args.model, batch_size=args.batch_size)
    bar = None
    if len(paths) > PROGRESS_ABOVE:
        import keras

        bar = keras.utils.Progbar(len(paths), unit_name="image")
    rows = []
    for start in range(0, len(paths), args.batch_size):
        chunk = paths[start:start + args.batch_size]
        try:
            out = scorer.run(chunk)
            rows += [{"path": p, "score": float(out["score"][i]), "mos": float(out["mos"][i]), "error": None}
                     for i, p in enumerate(chunk)]
        except ImageError:
            if not args.skip_errors:
                raise
            for path in chunk:  # find the bad ones
                try:
                    out = scorer.run([path])
                    rows.append({"path": path, "score": float(out["score"][0]), "mos": float(out["mos"][0]),
                                 "error": None})
                except ImageError as error:
                    rows.append({"path": path, "score": math.nan, "mos": math.nan, "error": str(error)})
        if bar is not None:
            bar.update(len(rows))
    return rows


def _write(rows: list[dict], args) -> None:
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "score", "mos", "error"])
            for row in rows:
                writer.writerow([row["path"], _number(row["score"]), _number(row["mos"]), row["error"] or ""])
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([{**row, "score": _json_number(row["score"]), "mos": _json_number(row["mos"])} for row in rows],
                      handle, indent=2)
    if not (args.csv or args.json):
        width = max([4] + [len(row["path"]) for row in rows])
        print(f"{'path':<{width}}  {'score':>7}  {'mos':>9}")
        for row in rows:
            line = f"{row['path']:<{width}}  {_number(row['score']):>7}  {_number(row['mos'], 4):>9}"
            print(line + (f"  error: {row['error']}" if row["error"] else ""))


def _number(value: float, digits: int = 4) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _json_number(value: float):
    return None if value is None or math.isnan(value) else round(float(value), 6)


def run(args: argparse.Namespace) -> int:
    from keras_lmiqa.errors import ConfigError
    from keras_lmiqa.serving.images import collect_images

    if bool(args.server) == bool(args.model):
        raise ConfigError("choose one of --server HOST:PORT or --model PATH")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    paths = collect_images(args.images)
    rows = _server_rows(args, paths) if args.server else _local_rows(args, paths)
    _write(rows, args)
    failed = sum(1 for row in rows if row["error"])
    if failed:
        print(f"lmiqa score: {failed} of {len(rows)} images could not be scored", file=sys.stderr)
    return 1 if failed else 0


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("score", help="score images with a server or a local model",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--server", metavar="HOST:PORT", help="gRPC endpoint (TF Serving or `lmiqa serve`)")
    source.add_argument("--model", metavar="PATH", help="model.keras, SavedModel version folder or export folder")
    parser.add_argument("--model-name", default="lmiqa", help="served model name (--server; default lmiqa)")
    parser.add_argument("--version", type=int, default=None, help="model version (--server; default latest)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (--server; default 30)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per request/call (default 32)")
    parser.add_argument("--csv", metavar="FILE", help="write path,score,mos,error rows to FILE")
    parser.add_argument("--json", metavar="FILE", help="write a JSON list of {path, score, mos, error} to FILE")
    parser.add_argument("--skip-errors", action="store_true",
                        help="score the other images when some are rejected (exit code 1)")
    parser.set_defaults(func=run)
    return parser
