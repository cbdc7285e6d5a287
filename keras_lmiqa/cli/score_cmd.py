"""`lmiqa score`: quality scores of images, from a server or a local model.

    lmiqa score IMAGE_OR_DIR...                      # the default shipped model (`lmiqa models`)
    lmiqa score --pretrained NAME IMAGE_OR_DIR...    # another shipped model
    lmiqa score --server HOST:PORT IMAGE_OR_DIR...   # gRPC (TF Serving or `lmiqa serve`)
    lmiqa score --model PATH IMAGE_OR_DIR...         # in-process: model.keras or an export

Folders are walked for .jpg/.jpeg/.png/.bmp/.gif (any case), sorted. Prints a table
(path, score, mos; score is normalised quality in [0, 1], higher = better) or writes
`--csv FILE` / `--json FILE` / `--html FILE` (checked writable before scoring, written
atomically; a file name that is not valid UTF-8 keeps its own bytes in the table and the
CSV, and is escaped in the JSON). The HTML page shows every photo worst first with its
crop windows coloured by crop score, a score filter, a histogram and the errors; it is
one file (thumbnails embedded) that opens in any browser without a network.
Only regular files are read (a FIFO or a link to /dev/zero is refused, not read), each
at most `--max-image-mb`. With `--skip-errors`, images that cannot be read or that the
model rejects get an empty score and their error instead of stopping the run (exit
code 1).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys

from keras_lmiqa import artifacts
from keras_lmiqa.cli.image_size_flag import add_max_image_mb, max_file_bytes
from keras_lmiqa.cli.progress import progress_printer
from keras_lmiqa.constants import MIB, MODEL_NAME, SCORING_BATCH_SIZE
from keras_lmiqa.errors import ConfigError, ImageError

PROGRESS_ABOVE = 50  # show progress (on a terminal) for more images than this
PAGE_CROP_KEYS = ("crop_windows", "crop_scores", "crop_weights")  # what the --html page draws


def _crops(outputs: dict, index: int, keep: bool) -> dict:
    """Image `index`'s crop outputs the --html page draws (none without --html)."""
    return {key: outputs[key][index] for key in PAGE_CROP_KEYS if key in outputs} if keep else {}


def _server_rows(args, paths: list[str]) -> list[dict]:
    from keras_lmiqa.serving.client import Client

    progress = progress_printer("images", len(paths), above=PROGRESS_ABOVE)
    with Client(args.server, model_name=args.model_name, timeout=args.timeout, batch_size=args.batch_size) as client:
        details = client.score_details(paths, version=args.version, progress=progress,
                                       on_error="nan" if args.skip_errors else "raise")
    args.source = f"model {args.model_name!r} of the server {args.server}"
    return [{"path": p, "score": d["score"], "mos": d["mos"], "error": d["error"],
             **({key: d[key] for key in PAGE_CROP_KEYS if key in d} if args.html else {})}
            for p, d in zip(paths, details)]


def _local_rows(args, paths: list[str], file_bytes: int) -> list[dict]:
    from keras_lmiqa.scorer import load_scorer

    if args.model:
        scorer = load_scorer(args.model, batch_size=args.batch_size, max_file_bytes=file_bytes)
        args.source = f"model {args.model}"
    else:
        from keras_lmiqa import pretrained_models

        name = args.pretrained or pretrained_models.default_model()
        card = pretrained_models.model_card(name)
        print(f"lmiqa score: pretrained model {name} ({card['summary']}; `lmiqa models --card {name}`)",
              file=sys.stderr)
        scorer = pretrained_models.scorer(name, batch_size=args.batch_size, max_file_bytes=file_bytes)
        args.source = f"the pretrained model {name}"
    args.mos_label = scorer.metadata.get("dataset", {}).get("scale", {}).get("kind") or "MOS"
    progress = progress_printer("images", len(paths), above=PROGRESS_ABOVE)
    rows = []
    for start in range(0, len(paths), args.batch_size):
        chunk = paths[start:start + args.batch_size]
        if args.skip_errors:
            extra = PAGE_CROP_KEYS if args.html else ()
            rows += [{"path": path, **row} for path, row in zip(chunk, scorer.score_each(chunk, extra_keys=extra))]
        else:
            out = scorer.run(chunk)
            rows += [{"path": p, "score": float(out["score"][i]), "mos": float(out["mos"][i]), "error": None,
                      **_crops(out, i, args.html)} for i, p in enumerate(chunk)]
        if progress is not None:
            progress(len(rows), len(paths))
    return rows


def _write(rows: list[dict], args, outputs: dict) -> None:
    """The table on stdout, or `outputs` ({flag: checked path}) each written atomically."""
    for flag, path in outputs.items():
        if flag == "--html":
            _write_html(rows, args, path)
            continue
        try:
            with artifacts.atomic_path(path) as temporary:
                # surrogateescape: a file name that is not UTF-8 is written as its own bytes (as on
                # stdout), so the CSV names the file; JSON escapes it (\udcff) and stays ASCII.
                with open(temporary, "w", newline="" if flag == "--csv" else None, encoding="utf-8",
                          errors="surrogateescape") as handle:
                    if flag == "--csv":
                        writer = csv.writer(handle)
                        writer.writerow(["path", "score", "mos", "error"])
                        for row in rows:
                            writer.writerow([row["path"], _number(row["score"]), _number(row["mos"]),
                                             row["error"] or ""])
                    else:
                        json.dump([{"path": row["path"], "score": _json_number(row["score"]),
                                    "mos": _json_number(row["mos"]), "error": row["error"]}
                                   for row in rows], handle, indent=2)
        except OSError as error:
            raise ConfigError(f"{flag} {path}: cannot write: {error.strerror or error}") from None
    if not outputs:
        width = max([4] + [len(row["path"]) for row in rows])
        print(f"{'path':<{width}}  {'score':>7}  {'mos':>9}")
        for row in rows:
            line = f"{row['path']:<{width}}  {_number(row['score']):>7}  {_number(row['mos'], 4):>9}"
            print(line + (f"  error: {row['error']}" if row["error"] else ""))


def _write_html(rows: list[dict], args, path: str) -> None:
    from keras_lmiqa.ui.report import write_report

    try:
        written = write_report(rows, path, source=getattr(args, "source", "lmiqa score"),
                               mos_label=getattr(args, "mos_label", "MOS"))
    except OSError as error:
        raise ConfigError(f"--html {path}: cannot write: {error.strerror or error}") from None
    print(f"lmiqa score: wrote {args.html}: {written['photos']} photos, {written['errors']} errors, "
          f"{written['bytes'] / MIB:.1f} MiB in {written['seconds']:.2f} s", file=sys.stderr)


def _number(value: float, digits: int = 4) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _json_number(value: float):
    return None if value is None or math.isnan(value) else round(float(value), 6)


def _check_arguments(args) -> dict:
    """Flag checks before any work; returns {flag: path} of the checked output files."""
    if args.pretrained:
        from keras_lmiqa.pretrained_models import model_folder

        model_folder(args.pretrained)  # an unknown name fails before any image is read
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    max_file_bytes(args)
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ConfigError(f"--timeout must be a number of seconds > 0, got {args.timeout}")
    if args.version is not None and args.version < 1:
        raise ConfigError(f"--version must be >= 1, got {args.version}")
    given = (("--csv", args.csv), ("--json", args.json), ("--html", args.html))
    outputs = {flag: artifacts.writable_file(path, flag) for flag, path in given if path}
    if len(set(outputs.values())) < len(outputs):
        same = [f"{flag} {path}" for flag, path in given if path and list(outputs.values()).count(outputs[flag]) > 1]
        raise ConfigError(f"{' and '.join(same)} are the same file; give different paths")
    return outputs


def _image_paths(items: list[str]) -> list[str]:
    """Files and walked folders, in order; a special file given by name (a FIFO, a
    device) is kept, to be refused with its reason rather than as missing."""
    from keras_lmiqa.serving.images import collect_images

    paths: list[str] = []
    for item in items:
        special = os.path.exists(item) and not os.path.isdir(item) and not os.path.isfile(item)
        paths.extend([item] if special else collect_images([item]))
    return paths


def run(args: argparse.Namespace) -> int:
    outputs = _check_arguments(args)
    file_bytes = max_file_bytes(args)
    paths = _image_paths(args.images)
    # Stat every file first: a FIFO would block a read forever, /dev/zero never ends.
    problems = {path: problem for path in paths
                if (problem := artifacts.check_regular_file(path, file_bytes, "image"))}
    if problems and not args.skip_errors:
        more = f" (and {len(problems) - 1} more; --skip-errors scores the others)" if len(problems) > 1 else ""
        raise ImageError(next(iter(problems.values())) + more)
    readable = [path for path in paths if path not in problems]
    scored = []
    if readable:
        scored = _server_rows(args, readable) if args.server else _local_rows(args, readable, file_bytes)
    scored = iter(scored)
    rows = [{"path": path, "score": math.nan, "mos": math.nan, "error": problems[path]} if path in problems
            else next(scored) for path in paths]
    _write(rows, args, outputs)
    failed = sum(1 for row in rows if row["error"])
    if failed:
        print(f"lmiqa score: {failed} of {len(rows)} images could not be scored", file=sys.stderr)
    return 1 if failed else 0


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("score", help="score images with a server or a local model",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--server", metavar="HOST:PORT", help="gRPC endpoint (TF Serving or `lmiqa serve`)")
    source.add_argument("--model", metavar="PATH", help="model.keras, SavedModel version folder or export folder")
    source.add_argument("--pretrained", metavar="NAME",
                        help="a shipped model (`lmiqa models`); the default when no source is given")
    parser.add_argument("--model-name", default=MODEL_NAME, help=f"served model name (--server; default {MODEL_NAME})")
    parser.add_argument("--version", type=int, default=None, help="model version (--server; default latest)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (--server; default 30)")
    parser.add_argument("--batch-size", type=int, default=SCORING_BATCH_SIZE,
                        help=f"images per request/call (default {SCORING_BATCH_SIZE})")
    parser.add_argument("--csv", metavar="FILE", help="write path,score,mos,error rows to FILE")
    parser.add_argument("--json", metavar="FILE", help="write a JSON list of {path, score, mos, error} to FILE")
    parser.add_argument("--html", metavar="FILE",
                        help="write a page of the photos, worst first, with their crop windows, to FILE")
    add_max_image_mb(parser, "are refused before reading")
    parser.add_argument("--skip-errors", action="store_true",
                        help="score the other images when some are unreadable or rejected (exit code 1)")
    parser.set_defaults(func=run)
    return parser
