"""What the benchmark scripts share: flags, interleaved timing, figures, tables, inputs.

Every figure is a `Figure` printed as one JSON line (`{"bench": ..., "name": ...}`)
and collected into a short table at the end. Machines here are shared and noisy, so
figures are ratios of variants timed side by side: `interleave` runs every variant
once per round (rotating the order each round) and reports medians.

TensorFlow is imported lazily (after `quiet_tensorflow`) so `--help` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
if ROOT not in sys.path:  # scripts run as `python bench/x.py` from anywhere
    sys.path.insert(0, ROOT)


def quiet_tensorflow() -> None:
    """Silence TF's C++ info logs (they would drown the JSON lines on stderr)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


# ----------------------------------------------------------------------------- flags


def parser(description: str) -> argparse.ArgumentParser:
    """Flags every script has: --quick, --repeats, --json (extra copy of the lines)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes and 2 repeats: a smoke run, figures are rough")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds per variant (median reported)")
    p.add_argument("--json", default=None, help="also append the JSON lines to this file")
    return p


def repeats(args, full: int, quick: int = 2) -> int:
    return args.repeats or (quick if args.quick else full)


# ----------------------------------------------------------------------------- timing


@dataclasses.dataclass
class Untimed:
    """A variant whose `setup()` runs untimed before each timed `run(setup's result)`.

    E.g. building a tf.data pipeline (tracing) is set-up; iterating it is what is timed.
    """

    setup: Callable[[], Any]
    run: Callable[[Any], Any]


def interleave(variants: dict[str, Any], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each call of each variant over `rounds` rounds, variants interleaved.

    A variant is a callable (all of it timed) or an `Untimed(setup, run)`. Each round
    runs every variant once; the order rotates so no variant always runs right after
    a particular other one (caches, other users' bursts). `warmup` untimed rounds
    first (tracing, thread pools, file cache).
    """
    names = list(variants)

    def call(name) -> float:
        variant = variants[name]
        if isinstance(variant, Untimed):
            prepared = variant.setup()
            start = time.perf_counter()
            variant.run(prepared)
        else:
            start = time.perf_counter()
            variant()
        return time.perf_counter() - start

    for _ in range(warmup):
        for name in names:
            call(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            times[name].append(call(name))
    return times


def primed(make_dataset):
    """An `Untimed` set-up: build a dataset and take its first element (iterator start,
    graph rewrites, function instantiation, shuffle-buffer fill), untimed. Returns the
    live iterator; `drain_rest` then times the steady state."""

    def setup():
        iterator = iter(make_dataset())
        next(iterator)
        return iterator

    return setup


def drain_rest(iterator) -> int:
    count = 0
    for _ in iterator:
        count += 1
    return count


def median(values) -> float:
    return float(statistics.median(values))


def spread(values) -> float:
    """Relative interquartile-ish spread (max-min over median) of a list of times."""
    m = median(values)
    return float((max(values) - min(values)) / m) if m > 0 and len(values) > 1 else 0.0


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a list."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


# ----------------------------------------------------------------------------- figures


@dataclasses.dataclass
class Figure:
    """One measured figure: what it is, its unit, and what it is compared with."""

    bench: str
    name: str
    value: float
    unit: str
    what: str
    baseline: str | None = None  # the figure this one is a ratio of, or None
    target: str | None = None  # e.g. ">= 0.7"
    met: bool | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data.update(data.pop("extra"))
        data["value"] = _round(self.value)
        return data


def _round(value):
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.4g}")
    return value


def check(value: float, target: str) -> bool:
    """Whether `value` meets a target written as '>= x', '<= x', '< x' or '> x'."""
    op, bound = target.split()
    bound = float(bound)
    return {">=": value >= bound, "<=": value <= bound, "<": value < bound, ">": value > bound}[op]


class Report:
    """Collects figures, prints each as a JSON line at once, and a table at the end."""

    def __init__(self, bench: str, args=None):
        self.bench = bench
        self.figures: list[Figure] = []
        self.json_path = getattr(args, "json", None)

    def add(self, name: str, value: float, unit: str, what: str, baseline: str | None = None,
            target: str | None = None, **extra) -> Figure:
        met = check(value, target) if target and math.isfinite(value) else None
        figure = Figure(self.bench, name, float(value), unit, what, baseline, target, met, extra)
        self.figures.append(figure)
        line = json.dumps(figure.to_json(), sort_keys=True)
        print(line, flush=True)
        if self.json_path:
            with open(self.json_path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        return figure

    def table(self) -> None:
        print_table(self.figures)


def print_table(figures: list[Figure]) -> None:
    rows = [(f.name, f"{_round(f.value)}", f.unit, f.target or "",
             "" if f.met is None else ("met" if f.met else "MISSED"), f.baseline or "") for f in figures]
    header = ("figure", "value", "unit", "target", "", "baseline")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    sys.stdout.flush()


# ----------------------------------------------------------------------------- inputs


def demo_paths(count: int) -> list[str]:
    """The first `count` images of the built-in demo dataset (builds it once, ~30 s)."""
    from keras_lmiqa import datasets

    records = datasets.load("demo")
    # Spread over the references (records are grouped by reference image).
    step = max(1, len(records) // count)
    return [records[i].path for i in range(0, len(records), step)][:count]


def generated_images(folder: str, count: int, side: int, fmt: str = "jpg", seed: int = 0) -> list[str]:
    """`count` photo-like images of `side` x `side` px written to `folder` (cached by name).

    Photos from scikit-image resized and jittered, so decoders and saliency see real
    image statistics rather than noise.
    """
    import numpy as np
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    sources = _photos()
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"s{side}-{i:04d}.{fmt}")
        if not os.path.exists(path):
            photo = Image.fromarray(sources[i % len(sources)]).resize((side, side), Image.BILINEAR)
            pixels = np.asarray(photo, np.int16) + rng.integers(-8, 9, (side, side, 3))
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            image.save(path, quality=90) if fmt == "jpg" else image.save(path)
        paths.append(path)
    return paths


def _photos():
    import numpy as np
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    return [np.ascontiguousarray(p[..., :3]) for p in photos]


def scratch_dir(name: str) -> str:
    """A per-user temp folder for generated inputs, reused between runs."""
    path = os.path.join(tempfile.gettempdir(), f"keras_lmiqa_bench_{os.getuid()}", name)
    os.makedirs(path, exist_ok=True)
    return path


def cpu_demo_config(**changes):
    """The `cpu-demo` preset as a TrainConfig, with `changes` on top."""
    from keras_lmiqa import config as config_lib

    return config_lib.TrainConfig(**{**config_lib.preset("cpu-demo"), **changes})


def drain(dataset, limit: int | None = None) -> int:
    """Iterate a tf.data dataset as a training loop would; returns the element count."""
    count = 0
    for _ in dataset:
        count += 1
        if limit is not None and count >= limit:
            break
    return count


# ----------------------------------------------------------------------------- machine


def machine() -> dict:
    """CPU model, cores, RAM, versions, date, and how busy the machine was."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cores": os.cpu_count(),
                            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            models = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        info["cpu_model"] = models[0] if models else platform.processor()
    except OSError:
        info["cpu_model"] = platform.processor()
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            total = next(line for line in handle if line.startswith("MemTotal"))
        info["ram_gib"] = round(int(total.split()[1]) / 2**20, 1)
    except (OSError, StopIteration):
        pass
    try:
        info["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        import keras
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["keras"] = keras.__version__
        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    except ImportError:
        pass
    return info


# ----------------------------------------------------------------------------- exports


def make_export(folder: str, config) -> str:
    """An untrained model for `config`, saved as a model.keras and exported; returns the
    version folder. Speed does not depend on the weights, so no training is needed."""
    from keras_lmiqa import artifacts
    from keras_lmiqa.export import export_model
    from keras_lmiqa.inference_spec import InferenceSpec, ScoreScale
    from keras_lmiqa.models import build_branch
    from keras_lmiqa.models.image_quality import image_quality_model, run_info

    run = os.path.join(folder, "run")
    os.makedirs(run, exist_ok=True)
    spec = InferenceSpec.from_config(config, ScoreScale(1.0, 5.0, True), "bench")
    model = image_quality_model(build_branch(config, name="teacher", weights="none"), spec, run_info(config))
    artifacts.save_keras(model, os.path.join(run, "model.keras"))
    return export_model(os.path.join(run, "model.keras"), os.path.join(folder, "export"), overwrite=True, version=1)


def image_bytes(args_side: int, count: int) -> list[bytes]:
    """Encoded images to score: demo PNGs (side 0) or generated JPEGs of `args_side` px."""
    paths = demo_paths(count) if not args_side else generated_images(scratch_dir("jpg"), count, args_side)
    out = []
    for path in paths:
        with open(path, "rb") as handle:
            out.append(handle.read())
    return out


# Runs a command and prints its exit status and peak RSS. A child's ru_maxrss counts the
# resident memory of the process that forked it (Linux carries the old address space's
# high-water mark over exec), so the command is forked from this small interpreter,
# never from a benchmark holding TensorFlow and a model.
_PEAK_RSS = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=sys.stderr)
_, status, usage = os.wait4(process.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def run_measured(command: list[str], stderr=None) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak RSS in GB of 10^9 bytes) of `command`: the largest resident set of
    the command and every descendant it waited for (Linux wait4), with the package's
    checkout on PYTHONPATH."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _PEAK_RSS, *command], stdout=subprocess.PIPE,
                            stderr=stderr, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    seconds = time.perf_counter() - started
    code, kilobytes = result.stdout.split()
    return int(code), seconds, int(kilobytes) * 1024 / 1e9  # ru_maxrss is in KiB on Linux


def decode_batch(images, spec):
    """Encoded images [B] -> (padded pixels [B, Hmax, Wmax, 3] uint8, windows [B, G, 4], saliency [B, G]):
    the batch `pipeline.inference_dataset` would make from the windows the export cuts
    (`scoring.prepare_encoded`), for timing the crops of a batch."""
    import tensorflow as tf

    from keras_lmiqa.inference_spec import as_inference_spec
    from keras_lmiqa.models.scoring import prepare_encoded

    spec = as_inference_spec(spec)

    def one(args):
        image, windows, saliency, _ = prepare_encoded(*args, spec)
        return tf.RaggedTensor.from_tensor(image, ragged_rank=1), windows, saliency

    images = tf.convert_to_tensor(images, tf.string)
    decoded, windows, saliency = tf.map_fn(
        one, (images, tf.range(tf.shape(images)[0])),
        fn_output_signature=(tf.RaggedTensorSpec([None, None, 3], tf.uint8, ragged_rank=1),
                             tf.RaggedTensorSpec([None, 4], tf.float32, ragged_rank=0),
                             tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0)))
    return decoded.to_tensor(), windows.to_tensor(), saliency.to_tensor()
