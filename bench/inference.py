"""Inference throughput: the exported `serving_default` (bytes in, score out) against the
bare backbone on the same crops.

    serving_default  the SavedModel signature loaded with tf.saved_model.load, called
                     in-process: decode, grid windows, spectral-residual saliency,
                     crop cutting, the branch (backbone + heads), importance pooling
    branch_on_crops  the same branch Keras model on the already cut crops (tf.function)
    backbone_on_crops  the bare backbone (same builder, untrained) on the same crops
Batches of 1, 8 and 32 images; every timed unit scores the same number of images.
Target: serving_default time <= 1.15 x backbone_on_crops (decode + saliency + crops
add <= 15 %).
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = "inference"


def main(argv=None):
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--batches", default="1,8,32", help="request batch sizes")
    p.add_argument("--images", type=int, default=64, help="images per timed unit (a multiple of every batch)")
    p.add_argument("--side", type=int, default=0, help="0: the demo's 256 px PNGs; N: generated N px JPEGs")
    p.add_argument("--backbone", default=None, help="backbone (default: the cpu-demo preset's)")
    p.add_argument("--crop-size", type=int, default=None)
    p.add_argument("--export-dir", default=None, help="reuse/keep the export here (default: a temp folder)")
    args = p.parse_args(argv)
    common.quiet_tensorflow()
    if args.quick:
        args.batches, args.images = "1,8", 16
    rounds = common.repeats(args, full=5, quick=2)
    report = common.Report(BENCH, args)

    import tensorflow as tf

    from keras_lmiqa.crops import cut_crops, grid_window_count
    from keras_lmiqa.loading import load_branch
    from keras_lmiqa.models import build_backbone

    changes = {k: v for k, v in (("backbone", args.backbone), ("crop_size", args.crop_size)) if v}
    config = common.cpu_demo_config(**changes)
    folder = args.export_dir or tempfile.mkdtemp(prefix="lmiqa-bench-export-")
    version_dir = common.make_export(folder, config)
    serving = tf.saved_model.load(version_dir).signatures["serving_default"]
    branch = load_branch(os.path.join(folder, "run", "model.keras"))
    backbone = build_backbone(config.backbone, config.crop_size, "none")
    branch_fn = tf.function(lambda crops: branch(crops, training=False)["score"])
    backbone_fn = tf.function(lambda flat: backbone(tf.cast(flat, tf.float32), training=False))
    data = common.image_bytes(args.side, args.images)
    S = config.crop_size
    side = args.side or 256  # the demo PNGs are 256 px squares
    G = grid_window_count(side, side, S, config.scales, config.grid_size)

    variants, sizes = {}, [int(b) for b in args.batches.split(",")]
    for b in sizes:
        requests = [tf.constant(data[i:i + b]) for i in range(0, len(data) - b + 1, b)]
        # The very crops the signature cuts, prepared once outside the timing.
        crops = [cut_crops(*common.decode_batch(r, config)[:2], S) for r in requests]
        flat = [tf.reshape(c, [-1, S, S, 3]) for c in crops]
        variants[f"b{b} serving_default"] = lambda rs=requests: [serving(images=r)["score"].numpy() for r in rs]
        variants[f"b{b} branch_on_crops"] = lambda cs=crops: [branch_fn(c).numpy() for c in cs]
        variants[f"b{b} backbone_on_crops"] = lambda fs=flat: [backbone_fn(f).numpy() for f in fs]
    times = common.interleave(variants, rounds)
    images = {b: (len(data) // b) * b for b in sizes}
    for name, t in times.items():
        b = int(name.split(" ")[0][1:])
        report.add(f"{name.replace(' ', '_')}_images_per_s", images[b] / common.median(t), "images/s",
                   f"{name.split(' ')[1]} at batch {b} ({G} crops of {S} px per image)", batch=b,
                   spread=common.spread(t), rounds=rounds)
    for b in sizes:
        serve, bare, branch_t = (common.median(times[f"b{b} {k}"])
                                 for k in ("serving_default", "backbone_on_crops", "branch_on_crops"))
        report.add(f"b{b}_overhead_vs_backbone", 100 * (serve / bare - 1), "%",
                   f"extra time of serving_default over the bare backbone on the same crops, batch {b}",
                   baseline=f"b{b}_backbone_on_crops_images_per_s", target="<= 15", batch=b)
        report.add(f"b{b}_overhead_vs_branch", 100 * (serve / branch_t - 1), "%",
                   f"extra time of serving_default over the branch model on the same crops, batch {b} "
                   "(decode + windows + saliency + cutting only)", baseline=f"b{b}_branch_on_crops_images_per_s",
                   batch=b)
    report.table()
    return report.figures


if __name__ == "__main__":
    main()
