"""Training throughput of two presets on real photos: images trained on per second.

    python bench/preset_throughput.py --data-root BIQ2021 [--presets cpu-photos,cpu-general] [--steps 40]

Each preset trains its own model (MobileNetV2 from scratch weights: the same compute as
ImageNet's) through the real pipeline (`TrainPipeline.epoch_dataset`, BIQ2021's training
photos) and the real step (`LMIQATrainer`), warm-up steps untimed; the presets run one
after the other on the same photos. Images count every photo a step trains on, the
synthetic groups' photos and copies included (`TrainConfig.images_per_step`).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = "preset_throughput"


def measure(preset: str, data_root: str, steps: int, warmup: int) -> dict:
    import tensorflow as tf

    from keras_lmiqa import datasets
    from keras_lmiqa.config import from_dict
    from keras_lmiqa.config import preset as preset_values
    from keras_lmiqa.pipeline import TrainPipeline
    from keras_lmiqa.training.step import LMIQATrainer

    config = from_dict({**preset_values(preset), "dataset": "biq2021", "data_root": data_root, "weights": "none"})
    records = datasets.load("biq2021", data_root).records[: (warmup + steps) * config.batch_size * 2]
    pipeline = TrainPipeline([r.path for r in records], [r.mos for r in records], config)
    trainer = LMIQATrainer(config, warmup + steps)
    step = trainer.make_train_function(tf.distribute.get_strategy())
    batches = iter(pipeline.epoch_dataset(0, config.batch_size, warmup + steps))
    for _ in range(warmup):
        step(next(batches))["loss"].numpy()
    started = time.perf_counter()
    for _ in range(steps):
        step(next(batches))["loss"].numpy()
    seconds = time.perf_counter() - started
    return {"preset": preset, "steps": steps, "images_per_step": config.images_per_step,
            "seconds_per_step": seconds / steps, "images_per_second": steps * config.images_per_step / seconds,
            "photos_per_second": steps * config.batch_size / seconds}


def main() -> int:
    parser = common.parser(__doc__)
    parser.add_argument("--data-root", required=True, help="BIQ2021 in its authors' layout")
    parser.add_argument("--presets", default="cpu-photos,cpu-general")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    common.quiet_tensorflow()
    for preset in args.presets.split(","):
        row = measure(preset, args.data_root, 5 if args.quick else args.steps, 2 if args.quick else args.warmup)
        print(f"{row['preset']:12s} {row['images_per_step']:3d} images/step  {row['seconds_per_step']:.2f} s/step  "
              f"{row['images_per_second']:.1f} images/s  ({row['photos_per_second']:.1f} MOS photos/s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
