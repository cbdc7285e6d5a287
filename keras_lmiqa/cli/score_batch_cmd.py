"""`lmiqa score-batch`: score millions of images with Apache Beam (`keras_lmiqa.beam`).

    lmiqa score-batch --input 'photos/**.jpg' --output scores/part            # local, one process per core
    lmiqa score-batch --input 'gs://b/a/*.jpg' --input 'gs://b/b/*.png' --output gs://b/scores/run1 \\
        --model gs://b/exports/lmiqa/3 --format parquet --runner DataflowRunner -- \\
        --project P --region europe-west1 --temp_location gs://b/tmp --requirements_file requirements.txt

Every file an --input pattern matches (`*` within a folder, `**` across folders) gets one
row path,score,mos,error in the sharded outputs PREFIX-SSSSS-of-NNNNN.<format>; an
unreadable, oversized or undecodable file gets its error (as `lmiqa score` words it),
and the exit code is 1. Arguments after `--` go to Beam as pipeline options (see
docs/batch.md). Needs the beam extra: pip install 'keras-lmiqa[beam]'.

Runners: DirectRunner (default: this machine, one worker process per core),
DataflowRunner, FlinkRunner, SparkRunner, PortableRunner, PrismRunner.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from keras_lmiqa.cli.image_size_flag import add_max_image_mb, max_file_bytes
from keras_lmiqa.constants import MIB, SCORING_BATCH_SIZE
from keras_lmiqa.errors import ConfigError, ModelError

RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner", "PrismRunner")
FORMATS = ("csv", "jsonl", "parquet")


def _import_beam():
    """apache_beam, quietly (its import logs a bigquery-client warning irrelevant here);
    ConfigError naming the extra when it is not installed."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        import apache_beam
    except ImportError as error:
        raise ConfigError(f"lmiqa score-batch needs Apache Beam ({error}): pip install 'keras-lmiqa[beam]'") from None
    finally:
        root.setLevel(level)
    return apache_beam


def _check_arguments(args) -> None:
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    max_file_bytes(args)
    if args.num_shards < 0:
        raise ConfigError(f"--num-shards must be >= 0 (0: the runner chooses), got {args.num_shards}")
    if args.pretrained:
        from keras_lmiqa.pretrained_models import model_folder

        model_folder(args.pretrained)  # an unknown name fails before the pipeline starts
    for flag, prefix in (("--output", args.output), ("--dead-letter", args.dead_letter)):
        if prefix and _local(prefix):
            folder = os.path.dirname(os.path.abspath(prefix))
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as error:
                raise ConfigError(f"{flag} {prefix}: cannot create {folder}: {error.strerror or error}") from None
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ConfigError(f"{flag} {prefix}: cannot write in {folder}")
    if args.model and _local(args.model) and not os.path.exists(args.model):
        raise ModelError(f"model not found: {args.model} (expected a model.keras, a SavedModel version folder "
                         "or an export folder)")


def _local(path: str) -> bool:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.get_scheme(path) in (None, "file")


def _check_inputs(patterns: list[str]) -> list[str]:
    """The patterns, local ones made absolute (the workers may start elsewhere); ConfigError
    for one that matches no file (listing at most one file of each)."""
    from apache_beam.io.filesystems import FileSystems


    checked = []
    for pattern in patterns:
        if _local(pattern) and os.path.isdir(pattern):
            raise ConfigError(f"--input {pattern} is a folder; give a pattern such as '{pattern.rstrip('/')}/**'")
        pattern = os.path.abspath(pattern) if _local(pattern) else pattern
        try:
            found = FileSystems.match([pattern], limits=[1])[0].metadata_list
        except Exception as error:  # BeamIOError: a missing file system, credentials, no such bucket
            raise ConfigError(f"--input {pattern}: cannot list: {str(error).splitlines()[0]}") from None
        if not found:
            raise ConfigError(f"--input {pattern} matches no file")
        checked.append(pattern)
    return checked


def pipeline_options(runner: str, beam_args: list[str], verbose: bool = False):
    """Beam's PipelineOptions of `beam_args`; the DirectRunner runs one worker process per
    core unless `beam_args` set direct_num_workers / direct_running_mode."""
    from apache_beam.options.pipeline_options import PipelineOptions

    given = " ".join(beam_args)
    extra = []
    if runner == "DirectRunner":
        if "--direct_num_workers" not in given:
            extra.append(f"--direct_num_workers={len(os.sched_getaffinity(0))}")
        if "--direct_running_mode" not in given:
            extra.append("--direct_running_mode=multi_processing")
    if not verbose and "--default_sdk_harness_log_level" not in given:  # the workers' per-bundle INFO lines
        extra.append("--default_sdk_harness_log_level=WARNING")
    return PipelineOptions([f"--runner={runner}", *extra, *beam_args])


def _counter(result, name: str) -> int | None:
    from apache_beam.metrics.metric import MetricsFilter

    from keras_lmiqa.beam import METRICS_NAMESPACE

    try:
        found = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name(name))
    except Exception:  # a runner without metrics support
        return None
    counters = found.get("counters", [])
    return sum(c.committed if c.committed is not None else c.attempted for c in counters) if counters else 0


def run(args: argparse.Namespace) -> int:
    beam = _import_beam()
    _check_arguments(args)
    patterns = _check_inputs(args.input)
    from keras_lmiqa.beam import ScoreImages, WriteRows  # TensorFlow: after the quick checks
    output = os.path.abspath(args.output) if _local(args.output) else args.output
    dead_letter = args.dead_letter and (os.path.abspath(args.dead_letter) if _local(args.dead_letter)
                                        else args.dead_letter)
    model = os.path.abspath(args.model) if args.model and _local(args.model) else args.model
    if not args.verbose:
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
    try:
        options = pipeline_options(args.runner, args.beam_args, args.verbose)
        pipeline = beam.Pipeline(options=options)
    except (ValueError, ImportError) as error:  # an unknown runner or option, a runner's missing extra
        raise ConfigError(f"--runner {args.runner}: {str(error).splitlines()[0]}") from None
    scored = (pipeline
              | "Patterns" >> beam.Create(patterns)
              | "ScoreImages" >> ScoreImages(model=model, pretrained=args.pretrained, max_batch_size=args.batch_size,
                                             max_file_bytes=max_file_bytes(args),
                                             dead_letter=bool(dead_letter)))
    rows = scored["rows"] if dead_letter else scored
    rows | "WriteRows" >> WriteRows(output, args.format, args.num_shards)
    if dead_letter:
        scored["failed"] | "WriteFailed" >> WriteRows(dead_letter, "jsonl", args.num_shards)
    print(f"lmiqa score-batch: {len(patterns)} pattern(s) on {args.runner}, writing {output}-*.{args.format}",
          file=sys.stderr)
    result = pipeline.run()
    result.wait_until_finish()
    scored_count, failed = _counter(result, "scored"), _counter(result, "failed")
    if scored_count is None:
        print(f"lmiqa score-batch: {result.state}", file=sys.stderr)
        return 0
    megabytes = (_counter(result, "bytes_read") or 0) / MIB
    print(f"lmiqa score-batch: scored {scored_count}, failed {failed}, read {megabytes:.1f} MiB", file=sys.stderr)
    return 1 if failed else 0


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("score-batch", help="score millions of images with Apache Beam (local or cluster)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", action="append", required=True, metavar="PATTERN",
                        help="file pattern, local or gs:// s3:// ... (repeatable; quote it against the shell)")
    parser.add_argument("--output", required=True, metavar="PREFIX",
                        help="output prefix: PREFIX-SSSSS-of-NNNNN.<format>")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="output format (default csv)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", metavar="PATH",
                        help="model.keras, SavedModel version folder or export folder (local or on gs:// ...)")
    source.add_argument("--pretrained", metavar="NAME",
                        help="a shipped model (`lmiqa models`); the default when no model is given")
    parser.add_argument("--runner", default="DirectRunner", metavar="RUNNER",
                        help=f"Beam runner: {', '.join(RUNNERS)} (default DirectRunner)")
    parser.add_argument("--batch-size", type=int, default=SCORING_BATCH_SIZE,
                        help=f"most images per model call (Beam's max_batch_size; default {SCORING_BATCH_SIZE})")
    add_max_image_mb(parser, "are error rows, not read")
    parser.add_argument("--num-shards", type=int, default=0, help="output files (default 0: the runner chooses)")
    parser.add_argument("--dead-letter", metavar="PREFIX",
                        help="also write the error rows to PREFIX-SSSSS-of-NNNNN.jsonl")
    parser.add_argument("beam_args", nargs="*", metavar="-- BEAM_OPTION",
                        help="Beam pipeline options after `--` (e.g. -- --project P --temp_location gs://b/tmp)")
    parser.set_defaults(func=run)
    return parser
