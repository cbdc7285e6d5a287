"""The shipped model on photos of 0.25 to 24 megapixels: time, throughput, memory and where the time goes.

    python bench/large_photos.py                 # BIQ2021 test photos upscaled to each size
    python bench/large_photos.py --quick         # 2 photos a size

Inputs: BIQ2021 official-test photos (512 x 512, 0.26 MP, the files as distributed)
and the same photos upscaled with Pillow's Lanczos to 1155x866 (1 MP), 2000x1500 (3 MP),
4032x3024 (12 MP) and 6000x4000 (24 MP), saved as JPEG q90 in a scratch folder (made
once). For each size, with the default shipped model loaded as `lmiqa score` loads it
(`pretrained_models.scorer`):

    ms/photo          one photo a call, median over the photos and rounds (target: 12 MP
                      <= 1000 ms, 24 MP <= 1500 ms); CPU ms/photo the process's CPU time
                      for the same (an idle 2-core machine's wall time is at most this)
    photos/s          the folder at `lmiqa score`'s batch size (0.25 MP: >= 10)
    peak RSS          of a separate `lmiqa score` process on those files (<= 1.2 GB)
    decode / windows+saliency / network
                      shares of the per-photo time: `working_size.decode_working` alone,
                      then windows + saliency on top (`scoring.prepare_encoded`), the rest
                      (crop cutting, the branch, pooling)
    backbone          the bare MobileNetV2 (untrained, same builder) on the same number of
                      128 px crops in one call: the bound; end-to-end / backbone speed
                      >= 0.75 on the 0.25 MP photos
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = "large_photos"
SIZES = {"0.25MP": None, "1MP": (1155, 866), "3MP": (2000, 1500), "12MP": (4032, 3024), "24MP": (6000, 4000)}


def photo_files(root: str, count: int, labels, upscaled: int) -> dict[str, list[str]]:
    """{size label: JPEG paths}: the first `count` official-test photos as distributed, and the
    first `upscaled` of them upscaled to each other size of `labels` (cached)."""
    from PIL import Image

    from keras_lmiqa import datasets

    dataset = datasets.load("biq2021", root)
    originals = [r.path for r in dataset.records if r.official_split == "test"][:count]
    folder = common.scratch_dir("large_photos")
    files = {}
    for label in labels:
        size = SIZES[label]
        files[label] = []
        for index, path in enumerate(originals if size is None else originals[:upscaled]):
            if size is None:
                files[label].append(path)
                continue
            target = os.path.join(folder, f"{label}-{index:03d}.jpg")
            if not os.path.exists(target):
                Image.open(path).convert("RGB").resize(size, Image.LANCZOS).save(target + ".tmp.jpg", quality=90)
                os.replace(target + ".tmp.jpg", target)
            files[label].append(target)
    return files


def peak_rss_gb(paths: list[str]) -> tuple[float, float]:
    """(peak RSS in GB, wall seconds) of `lmiqa score` on `paths` in a fresh process."""
    code, seconds, gigabytes = common.run_measured([sys.executable, "-m", "keras_lmiqa.cli", "score", *paths],
                                                   stderr=subprocess.DEVNULL)
    if code != 0:
        raise RuntimeError(f"lmiqa score failed on {paths[0]} ...")
    return gigabytes, seconds


def main(argv=None):
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--data-root", default="/work/data/biq2021")
    p.add_argument("--photos", type=int, default=5, help="photos per size")
    p.add_argument("--folder-photos", type=int, default=48, help="0.25 MP photos in the throughput folder")
    p.add_argument("--sizes", default=",".join(SIZES), help="photo sizes to measure")
    p.add_argument("--rss-sizes", default=",".join(SIZES), help="sizes whose `lmiqa score` peak RSS is measured")
    args = p.parse_args(argv)
    common.quiet_tensorflow()
    if args.quick:
        args.photos, args.folder_photos = 2, 8
    rounds = common.repeats(args, full=3, quick=1)
    report = common.Report(BENCH, args)

    import tensorflow as tf

    from keras_lmiqa import pretrained_models
    from keras_lmiqa.constants import SCORING_BATCH_SIZE
    from keras_lmiqa.models import build_backbone
    from keras_lmiqa.models.scoring import prepare_encoded
    from keras_lmiqa.working_size import decode_working

    files = photo_files(args.data_root, max(args.photos, args.folder_photos), args.sizes.split(","), args.photos)
    scorer = pretrained_models.scorer(batch_size=1)
    folder_scorer = pretrained_models.scorer(batch_size=SCORING_BATCH_SIZE)
    spec = pretrained_models.pretrained().spec
    decode_fn = tf.function(lambda c: decode_working(c, spec.max_pixels, spec.working_long_side)[0])
    prepare_fn = tf.function(lambda c: prepare_encoded(c, tf.constant(0), spec)[1])
    backbone = build_backbone("mobilenet_v2", spec.crop_size, "none")
    backbone_fn = tf.function(lambda crops: backbone(crops, training=False))

    def read(path):
        with open(path, "rb") as handle:
            return handle.read()

    for label in args.sizes.split(","):
        paths = files[label]
        photos = [read(path) for path in paths[:args.photos]]
        windows = int(prepare_fn(tf.constant(photos[0])).shape[0])
        crops = tf.random.uniform([windows, spec.crop_size, spec.crop_size, 3], 0, 255)
        variants = {
            "score": lambda photos=photos: [scorer.score([photo]) for photo in photos],
            "decode": lambda photos=photos: [decode_fn(tf.constant(photo)).numpy() for photo in photos],
            "prepare": lambda photos=photos: [prepare_fn(tf.constant(photo)).numpy() for photo in photos],
            "backbone": lambda photos=photos, crops=crops: [backbone_fn(crops).numpy() for _ in photos],
        }
        times = {name: [t / len(photos) for t in ts] for name, ts in common.interleave(variants, rounds).items()}
        total, decode, prepare, bare = (common.median(times[k]) for k in ("score", "decode", "prepare", "backbone"))
        folder_paths = paths[:args.folder_photos] if label == "0.25MP" else paths[:args.photos]
        folder = {"folder": lambda chosen=folder_paths: folder_scorer.score(chosen)}
        folder_times = common.interleave(folder, rounds)["folder"]
        started = time.process_time()
        variants["score"]()
        cpu = (time.process_time() - started) / len(photos)
        target = {"12MP": "<= 1000", "24MP": "<= 1500"}.get(label)
        report.add(f"{label} ms/photo", 1000 * total, "ms", f"one photo a call, {windows} windows", target=target)
        report.add(f"{label} CPU ms/photo", 1000 * cpu, "ms", "CPU time (both cores) of one photo a call: "
                   "wall time on an idle machine is at most this")
        report.add(f"{label} photos/s", len(folder_paths) / common.median(folder_times), "photos/s",
                   f"a folder of {len(folder_paths)}, batch {SCORING_BATCH_SIZE}",
                   target=">= 10" if label == "0.25MP" else None)
        if label in args.rss_sizes.split(","):
            rss, _ = peak_rss_gb(paths[:args.photos])
            report.add(f"{label} peak RSS", rss, "GB", f"lmiqa score on {len(photos)} photos", target="<= 1.2")
        report.add(f"{label} decode share", 100 * decode / total, "%", "decode_working")
        report.add(f"{label} windows+saliency share", 100 * (prepare - decode) / total, "%", "prepare_encoded - decode")
        report.add(f"{label} network share", 100 * (total - prepare) / total, "%", "crop cutting, branch, pooling")
        report.add(f"{label} backbone ms", 1000 * bare, "ms", f"bare backbone on {windows} crops")
        report.add(f"{label} end-to-end vs backbone", bare / total, "x", "backbone time / end-to-end time",
                   target=">= 0.75" if label == "0.25MP" else None)
    report.table()
    return report.figures


if __name__ == "__main__":
    main()
