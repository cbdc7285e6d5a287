"""Batch scoring on Apache Beam: `ScoreImages`, a PTransform over Beam's `RunInference`.

    import apache_beam as beam
    from keras_lmiqa.beam import ScoreImages

    with beam.Pipeline(options=options) as pipeline:
        rows = (pipeline
                | beam.Create(["gs://bucket/photos/**.jpg"])     # file patterns, and/or
                | ScoreImages(model="gs://bucket/exports/lmiqa/3"))  # (key, bytes) pairs
        # rows: {"path", "score", "mos", "error"}, one per matched file or (key, bytes) pair

The same pipeline runs locally (DirectRunner) and on Dataflow, Flink or Spark
(`lmiqa score-batch`, docs/batch.md). Files are listed and read through Beam's file
systems (local paths, and gs:// or s3:// where their Beam extra is installed). Each
worker process loads the model once (`ImageQualityModelHandler.load_model`: a
SavedModel export, a model.keras or a shipped model) and Beam shares it across that
process's threads; batches are scored by `Scorer.score_each`, the graph and the
messages of `lmiqa score`, so a file's score and its error are the same as there.

A bad element never stops the pipeline: a file above `max_file_bytes`, unreadable or
not a decodable image becomes a row with its error and null score; counted in the Beam
metrics `lmiqa:scored`, `lmiqa:failed` and `lmiqa:bytes_read`. With
`dead_letter=True` the transform returns {"rows": every row, "failed": the error rows}.
A broken model (ModelError) fails the pipeline: no image would score.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes, FileMetadata
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from keras_lmiqa import artifacts
from keras_lmiqa.constants import DEFAULT_MAX_FILE_BYTES, SCORING_BATCH_SIZE
from keras_lmiqa.errors import ImageError, ModelError

ROW_FIELDS = ("path", "score", "mos", "error")
METRICS_NAMESPACE = "lmiqa"
FAILED_TAG = "failed"


def _is_local(path: str) -> bool:
    return FileSystems.get_scheme(path) in (None, "file")


def stage_model(path: str) -> str:
    """A local copy of a model on another file system (gs://, s3://, ... through Beam's
    FileSystems): a model.keras file or a SavedModel folder, copied once per worker
    process into a temporary folder; a local path is returned as is."""
    if _is_local(path):
        return path
    top = path.rstrip("/")
    local_root = tempfile.mkdtemp(prefix="lmiqa-model-")
    target = os.path.join(local_root, top.rsplit("/", 1)[-1])
    try:
        inside = [f.path for f in FileSystems.match([top + "/**"])[0].metadata_list if not f.path.endswith("/")]
        if inside:  # a SavedModel or export folder
            target_of = {source: os.path.join(target, source[len(top) + 1:]) for source in inside}
        elif FileSystems.exists(top):  # a model.keras
            target_of = {top: target}
        else:
            raise ModelError(f"model not found: {path} (no file there or under it)")
        for source, local in target_of.items():
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as reader:
                with open(local, "wb") as writer:
                    shutil.copyfileobj(reader, writer)
    except ModelError:
        shutil.rmtree(local_root, ignore_errors=True)
        raise
    except Exception as error:  # BeamIOError, credentials, missing file-system extra
        shutil.rmtree(local_root, ignore_errors=True)
        raise ModelError(f"cannot copy the model {path}: {str(error).splitlines()[0] if str(error) else error!r}") \
            from None
    return target


class ImageQualityModelHandler(ModelHandler[tuple[str, bytes], PredictionResult, object]):
    """Beam's ModelHandler for LML-IQA: examples (label, encoded bytes), one
    PredictionResult per example whose `inference` is {score, mos, error}.

    Args:
        model: a SavedModel version or export folder or a model.keras, local or on a Beam
            file system (copied to each worker, `stage_model`); None: the shipped model.
        pretrained: a shipped model's name (`lmiqa models`), instead of `model`.
        min_batch_size, max_batch_size: Beam's batching of examples per call.
        large_model: Beam's option to load one copy per machine shared by all its
            processes (`share_model_across_processes`). By default each process loads
            its own and shares it across its threads: a shared copy would run every
            process's batches in the one process that holds it.
    """

    def __init__(self, model: str | None = None, pretrained: str | None = None, min_batch_size: int = 1,
                 max_batch_size: int = SCORING_BATCH_SIZE, large_model: bool = False):
        if model is not None and pretrained is not None:
            raise ModelError("give a model or a pretrained model name, not both")
        if not 1 <= min_batch_size <= max_batch_size:
            raise ValueError(f"need 1 <= min_batch_size <= max_batch_size, got {min_batch_size}, {max_batch_size}")
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size, large_model=large_model)
        self._model = None if model is None else os.fspath(model)
        self._pretrained = pretrained
        self._max_batch_size = max_batch_size

    def load_model(self):
        """The `Scorer`; once per worker process (Beam's shared handle), never per bundle."""
        if self._model is None:
            from keras_lmiqa import pretrained_models

            return pretrained_models.scorer(self._pretrained, batch_size=self._max_batch_size)
        from keras_lmiqa.scorer import load_scorer

        return load_scorer(stage_model(self._model), batch_size=self._max_batch_size)

    def run_inference(self, batch: Sequence[tuple[str, bytes]], model, inference_args=None
                      ) -> Iterable[PredictionResult]:
        labels = [label for label, _ in batch]
        rows = model.score_each([contents for _, contents in batch], labels)
        return [PredictionResult(label, row, model.source) for label, row in zip(labels, rows)]

    def get_num_bytes(self, batch: Sequence[tuple[str, bytes]]) -> int:
        return sum(len(contents) for _, contents in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE


def error_row(path: str, error: str) -> dict:
    return {"path": path, "score": None, "mos": None, "error": error}


class _ReadImage(beam.DoFn):
    """FileMetadata -> (path, bytes); a file above the size limit or unreadable becomes an
    error row on FAILED_TAG, with `lmiqa score`'s message."""

    def __init__(self, max_file_bytes: int):
        self._max_file_bytes = max_file_bytes
        self._bytes_read = Metrics.counter(METRICS_NAMESPACE, "bytes_read")

    def process(self, metadata: FileMetadata):
        path, limit = metadata.path, self._max_file_bytes
        try:
            if _is_local(path):  # refuses FIFOs and devices unread, as `lmiqa score`
                contents = artifacts.read_regular_file(path, limit, "image")
            elif metadata.size_in_bytes > limit:
                raise ImageError(artifacts.oversize_problem(path, metadata.size_in_bytes, limit, "image"))
            else:
                with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                    contents = handle.read(limit + 1)
                if len(contents) > limit:
                    raise ImageError(artifacts.oversize_problem(path, len(contents), limit, "image"))
        except ImageError as error:
            yield beam.pvalue.TaggedOutput(FAILED_TAG, error_row(path, str(error)))
            return
        except Exception as error:  # a remote file system's IO error: this file only
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            yield beam.pvalue.TaggedOutput(FAILED_TAG, error_row(path, f"cannot read image {path}: {reason}"))
            return
        self._bytes_read.inc(len(contents))
        yield path, contents


class _CheckKeyedBytes(beam.DoFn):
    """(key, bytes) -> (str key, bytes); anything else -> an error row."""

    def process(self, element):
        if (isinstance(element, tuple) and len(element) == 2
                and isinstance(element[1], (bytes, bytearray, memoryview))):
            yield str(element[0]), bytes(element[1])
        else:
            label = str(element[0]) if isinstance(element, tuple) and element else repr(element)[:200]
            yield beam.pvalue.TaggedOutput(FAILED_TAG, error_row(
                label, f"{label}: expected a file pattern or a (key, encoded image bytes) pair, "
                       f"got {type(element).__name__}"))


class _CountRows(beam.DoFn):
    def __init__(self):
        self._scored = Metrics.counter(METRICS_NAMESPACE, "scored")
        self._failed = Metrics.counter(METRICS_NAMESPACE, "failed")

    def process(self, row: dict):
        (self._failed if row["error"] else self._scored).inc()
        yield row


def _as_row(result: PredictionResult) -> dict:
    inference = result.inference
    if inference["error"]:
        return error_row(result.example, inference["error"])
    return {"path": result.example, "score": inference["score"], "mos": inference["mos"], "error": None}


class ScoreImages(beam.PTransform):
    """File patterns (str) and/or (key, encoded image bytes) pairs -> rows {path, score, mos, error}.

    Args:
        model, pretrained, min_batch_size, max_batch_size, large_model: the
            `ImageQualityModelHandler`'s (default: the shipped default model).
        max_file_bytes: matched files above this are error rows, not read (as `lmiqa score
            --max-image-mb`).
        dead_letter: return {"rows": PCollection, "failed": its error rows} instead of the rows.

    Patterns are matched by Beam (`*` within a folder, `**` across folders; a pattern
    without wildcards that matches nothing fails the pipeline) and the files spread over
    the workers (a reshuffle) before they are read. `score` is normalised quality in
    [0, 1], higher = better; `mos` is on the model's training scale; both None on an
    error row.
    """

    def __init__(self, model: str | None = None, pretrained: str | None = None, min_batch_size: int = 1,
                 max_batch_size: int = SCORING_BATCH_SIZE, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                 large_model: bool = False, dead_letter: bool = False):
        super().__init__()
        if max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be >= 1, got {max_file_bytes}")
        self._handler = ImageQualityModelHandler(model, pretrained, min_batch_size, max_batch_size, large_model)
        self._max_file_bytes = max_file_bytes
        self._dead_letter = dead_letter

    def expand(self, elements):
        patterns, others = elements | "SplitInputs" >> beam.Partition(
            lambda element, _: 0 if isinstance(element, str) else 1, 2)
        read = (patterns
                | "MatchFiles" >> fileio.MatchAll()
                | "SpreadFiles" >> beam.Reshuffle()
                | "ReadFiles" >> beam.ParDo(_ReadImage(self._max_file_bytes)).with_outputs(FAILED_TAG, main="images"))
        keyed = others | "CheckPairs" >> beam.ParDo(_CheckKeyedBytes()).with_outputs(FAILED_TAG, main="images")
        scored = ((read.images, keyed.images)
                  | "JoinImages" >> beam.Flatten()
                  | "RunInference" >> RunInference(self._handler)
                  | "ToRows" >> beam.Map(_as_row))
        rows = ((scored, read[FAILED_TAG], keyed[FAILED_TAG])
                | "JoinRows" >> beam.Flatten()
                | "CountRows" >> beam.ParDo(_CountRows()))
        if not self._dead_letter:
            return rows
        return {"rows": rows, "failed": rows | "FailedRows" >> beam.Filter(lambda row: bool(row["error"]))}


# ---------------------------------------------------------------- writing rows

FORMATS = ("csv", "jsonl", "parquet")


def csv_line(row: dict) -> str:
    """One CSV line (no newline) of a row, as `lmiqa score --csv` quotes it; empty score/mos on an error row."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(
        ["" if row[field] is None else row[field] for field in ROW_FIELDS])
    return buffer.getvalue()


def parquet_schema():
    import pyarrow

    return pyarrow.schema([("path", pyarrow.string()), ("score", pyarrow.float64()),
                           ("mos", pyarrow.float64()), ("error", pyarrow.string())])


class WriteRows(beam.PTransform):
    """Rows -> sharded files PREFIX-SSSSS-of-NNNNN.<format> (csv with a header line,
    jsonl, or parquet); Beam writes each shard under a temporary name and renames it
    into place when the pipeline finishes. `num_shards` 0 lets the runner choose."""

    def __init__(self, prefix: str, file_format: str = "csv", num_shards: int = 0):
        super().__init__()
        if file_format not in FORMATS:
            raise ValueError(f"file_format must be one of {', '.join(FORMATS)}, got {file_format!r}")
        self._prefix, self._format, self._num_shards = prefix, file_format, num_shards

    def expand(self, rows):
        suffix = "." + self._format
        if self._format == "parquet":
            return rows | "WriteParquet" >> beam.io.WriteToParquet(
                self._prefix, parquet_schema(), file_name_suffix=suffix, num_shards=self._num_shards)
        if self._format == "csv":
            lines, header = rows | "CsvLines" >> beam.Map(csv_line), ",".join(ROW_FIELDS)
        else:
            lines, header = rows | "JsonLines" >> beam.Map(lambda row: json.dumps(row, allow_nan=False)), None
        return lines | "WriteText" >> beam.io.WriteToText(
            self._prefix, file_name_suffix=suffix, num_shards=self._num_shards, header=header)


__all__ = ["FAILED_TAG", "METRICS_NAMESPACE", "ROW_FIELDS", "ImageQualityModelHandler", "ScoreImages",
           "FORMATS", "WriteRows", "csv_line", "error_row", "parquet_schema", "stage_model"]
