"""The toy IQA set and the tiny training settings shared by fixtures and tests."""

import os

import numpy as np

TOY_LEVELS = 6


def make_toy_dataset(folder: str, size=(160, 128)) -> str:
    """Write the toy dataset into `folder`; returns the labels CSV path."""
    import cv2
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket(),
              np.dstack([skimage.data.camera()] * 3), skimage.data.immunohistochemistry()]
    rng = np.random.default_rng(0)
    rows = ["path,mos,group"]
    for ref, photo in enumerate(photos):
        image = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        for level in range(TOY_LEVELS):
            for kind in ("blur", "noise"):
                if level == 0 and kind == "noise":
                    continue  # one pristine copy per reference
                if kind == "blur":
                    out = cv2.GaussianBlur(image, (0, 0), 0.6 * level) if level else image
                else:
                    noise = rng.normal(0, 9.0 * level, image.shape)
                    out = np.clip(image + noise, 0, 255).astype(np.uint8)
                name = f"ref{ref}_{kind}{level}.png"
                cv2.imwrite(os.path.join(folder, name), out[..., ::-1])
                rows.append(f"{name},{5.0 - 0.7 * level:.2f},ref{ref}")
    path = os.path.join(folder, "labels.csv")
    with open(path, "w") as handle:
        handle.write("\n".join(rows) + "\n")
    return path


TOY_TRAIN_SETTINGS = {
    "dataset": "csv",
    "dataset_options": {"group_column": "group"},
    "backbone": "tiny", "weights": "none", "crop_size": 32, "num_crops": 4, "num_positives": 2,
    "grid_size": 2, "epochs": 10, "batch_size": 4, "lr": 3e-3, "weight_decay": 1e-4, "warmup_epochs": 0.0,
    "smooth_l1_beta": 0.05, "lambda_lm": 0.1, "lambda_rank": 0.1,
    "momentum": 0.9, "head_units": 32, "embedding_dim": 16, "test_fraction": 0.34, "val_fraction": 0.25,
    "cache": "memory", "checkpoint_every": 0,
}
