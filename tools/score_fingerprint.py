"""Scores of fixed images by fixed models, to prove a refactor changes no score.

    python tools/score_fingerprint.py --out before.npz [--model run/model.keras] [--photos DIR]
    (change the code)
    python tools/score_fingerprint.py --out after.npz ... --compare before.npz

Scores every shipped model through `ImageQualityModel.score_images` and through
`load_scorer`, and each `--model` file through `load_scorer`, on made images of 0.08 to
12 megapixels (JPEG and PNG, the same bytes on every run) plus the first 12 files of
`--photos`. `--compare` prints, per entry, "identical" or the largest difference, and
exits 1 unless every entry is bit-identical.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile

import cv2
import numpy as np

SIZES = ((240, 320), (600, 900), (1500, 2000), (3024, 4032))


def made_images(folder: str) -> list[str]:
    """Smooth random images of each SIZE, as JPEG and PNG (deterministic bytes)."""
    rng = np.random.default_rng(0)
    paths = []
    for index, (height, width) in enumerate(SIZES):
        small = (rng.random((height // 8, width // 8, 3)) * 255).astype(np.uint8)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        for extension in ("jpg", "png"):
            path = os.path.join(folder, f"made-{index}.{extension}")
            cv2.imwrite(path, image)
            paths.append(path)
    return paths


def fingerprint(images: list[str], model_files: list[str]) -> dict[str, np.ndarray]:
    import keras_lmiqa
    from keras_lmiqa import pretrained_models

    scores = {}
    for name in pretrained_models.list_models():
        model = keras_lmiqa.pretrained(name)
        scores[f"{name}/model"] = np.asarray(model.score_images(images)["score"])
        scores[f"{name}/scorer"] = np.asarray(pretrained_models.scorer(name).score(images))
    for path in model_files:
        scores[f"{path}/scorer"] = np.asarray(keras_lmiqa.load_scorer(path).score(images))
    return scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the .npz to write")
    parser.add_argument("--model", action="append", default=[], help="a model.keras to score with too")
    parser.add_argument("--photos", help="a folder of photos; its first 12 files (sorted) are scored too")
    parser.add_argument("--compare", help="an earlier --out to compare with")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        photos = sorted(glob.glob(os.path.join(args.photos, "*")))[:12] if args.photos else []
        scores = fingerprint(photos + made_images(folder), args.model)
    np.savez(args.out, **scores)
    if not args.compare:
        return 0
    before = np.load(args.compare)
    same = True
    for key, value in scores.items():
        if key not in before.files or before[key].shape != value.shape:
            print(f"{key}: missing or of another shape in {args.compare}")
            same = False
        elif np.array_equal(before[key], value):
            print(f"{key}: identical ({value.size} images)")
        else:
            print(f"{key}: largest difference {np.abs(before[key] - value).max():.3g}")
            same = False
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
