"""The YAML files in `configs/`, generated from the code (never edit them by hand):

    python -m keras_lmiqa.research.configs cpu-demo > configs/cpu-demo.yaml
    python -m keras_lmiqa.research.configs koniq10k > configs/koniq10k.yaml
    python -m keras_lmiqa.research.configs --all configs    # every file

A preset name gives the preset's keys; a benchmark name gives the `paper` preset on
that dataset with its per-dataset settings (`PAPER_DATASETS`), each with its reason.
"""

from __future__ import annotations

import os
import sys

import yaml

from keras_lmiqa.artifacts import atomic_path
from keras_lmiqa.config import preset

HEADERS = {
    "cpu-demo": ("Reproduces the CPU demo on the built-in demo dataset (docs/results.md, demo tables):\n"
                 "the `cpu-demo` preset, what `lmiqa train --dataset demo` uses by default, sized for\n"
                 "a 2-core CPU.\n"
                 "  lmiqa protocol --config configs/cpu-demo.yaml --dataset demo --repeats 3 "
                 "--output-dir runs/demo-protocol\n"
                 "  lmiqa ablate --config configs/cpu-demo.yaml --dataset demo --output-dir runs/demo-ablation"),
    "cpu-photos": ("Reproduces the real-photograph table of docs/results.md (BIQ2021, official split) on a\n"
                   "2-core CPU: the `cpu-photos` preset, ImageNet MobileNetV2 (weights: imagenet; pass\n"
                   "--weights PATH where it cannot download), 128 px crops, K=4, P=1, 2 epochs of 16.\n"
                   "  lmiqa ablate --config configs/cpu-photos.yaml --dataset biq2021 --data-root DIR "
                   "--variants regression --repeats 3 --output-dir runs/biq2021-ablation"),
    "cpu-general": ("Reproduces the general-purpose model of docs/results.md (BIQ2021 MOS plus synthetic ranking) on\n"
                    "a 2-core CPU: the `cpu-photos` recipe plus 4 synthetic groups a batch, each a training\n"
                    "photo and 2 copies distorted in graph by one family at two levels (docs/method.md).\n"
                    "  python train.py --config configs/cpu-general.yaml --dataset biq2021 --data-root DIR "
                    "--seed 0 --split-seed 0 --output-dir runs/general/split-0"),
}

# Per-dataset settings of the paper protocol. Not tuned here (no GPU): the rule is a
# similar number of optimiser steps everywhere (about 2,000-5,000), enough for a
# pretrained ViT-S to adapt and few enough that the small sets do not overfit, with a
# validation part of train picking the epoch. Larger sets take batch 32: twice the
# contrastive negatives (the whole global batch) and a fuller GPU, with the backbone's
# lr scaled with the batch (1e-4 per 16 images, the linear rule); the heads train at
# head_lr_multiplier (10) times it, the method's default. No layer-wise lr decay.
SMALL = {"epochs": 40, "batch_size": 16, "lr": 1.0e-4, "warmup_epochs": 3.0}
MEDIUM = {"epochs": 25, "batch_size": 16, "lr": 1.0e-4, "warmup_epochs": 1.0}
LARGE = {"epochs": 12, "batch_size": 32, "lr": 2.0e-4, "warmup_epochs": 1.0}
REASONS = {
    "SMALL": "under 1,200 images: 35-52 steps an epoch of 16, so 40 epochs (1,400-2,100 steps), 3 of warm-up",
    "MEDIUM": "3,000 images: 135 steps an epoch of 16, 25 epochs (~3,400 steps)",
    "LARGE": "10k+ images: batch 32 (more negatives), lr 2e-4 (linear rule), 12 epochs (~3,000 steps)",
}
# name -> (title, what it holds, split phrase, the paper's PLCC or "", settings kind)
PAPER_DATASETS = {
    "kadid10k": ("KADID-10k", "synthetic: 81 references x 25 distortions x 5 levels, MOS (higher = better)",
                 "by reference image", "", "LARGE"),
    "tid2013": ("TID2013", "synthetic: 25 references x 24 distortions x 5 levels, MOS",
                "by reference image", "0.942", "MEDIUM"),
    "live": ("LIVE IQA (release 2)",
             "synthetic: 29 references, 5 distortions, DMOS (lower = better; metrics keep the sign right)",
             "by reference image", "", "SMALL"),
    "csiq": ("CSIQ", "synthetic: 30 references x 6 distortions x 4-5 levels, DMOS (lower = better)",
             "by reference image", "0.977", "SMALL"),
    "livec": ("LIVE In the Wild Challenge (LIVEC)", "authentic: 1,162 photographs, MOS", "by image", "0.914", "SMALL"),
    "koniq10k": ("KonIQ-10k", "authentic: 10,073 photographs (512x384 by default), MOS",
                 "by image (the official train/val/test split when koniq10k_distributions_sets.csv is present)",
                 "", "LARGE"),
    "spaq": ("SPAQ", "authentic: 11,125 smartphone photographs (short side resized to 512), MOS", "by image", "",
             "LARGE"),
    "livefb": ("LIVE-FB (PaQ-2-PiQ)", "authentic: ~40k images, MOS",
               "by image (the official split when labels640.csv / labels=640_padded.csv are present)", "",
               "LARGE"),
}
# LIVE-FB's ~40k images: 12 epochs would be 15,000 steps; 5 (~5,000) fit the same budget.
OVERRIDES = {"livefb": {"epochs": 5}}
KINDS = {"SMALL": SMALL, "MEDIUM": MEDIUM, "LARGE": LARGE}
PROTOCOL = {"test_fraction": 0.2, "val_fraction": 0.1, "use_official_split": True}


def paper_settings(dataset: str) -> dict:
    """What configs/<dataset>.yaml sets on top of the paper preset."""
    kind = PAPER_DATASETS[dataset][4]
    return {**preset("paper"), "dataset": dataset, **KINDS[kind], **OVERRIDES.get(dataset, {}), **PROTOCOL}


def _paper_yaml(dataset: str) -> str:
    title, holds, split, plcc, kind = PAPER_DATASETS[dataset]
    reported = f" (the paper reports PLCC {plcc})" if plcc else ""
    header = (
        f"Reproduces LML-IQA (arXiv 2406.19247) on {title}: {holds}.\n"
        f"Protocol: 10 random 80/20 splits {split}; a validation part of train picks the\n"
        f"epoch; report the median test SRCC/PLCC over the splits{reported}.\n"
        "Model: the paper preset: ViT-S/16 (keras-hub DeiTBackbone) from the ImageNet preset\n"
        "deit_small_distilled_patch16_224_imagenet on 224 px crops, the method's defaults\n"
        "(docs/method.md). Without internet pass --weights DIR (a keras-hub preset folder).\n"
        f"Settings: {REASONS[kind]}{'; ~40k images: 5 epochs (~5,000 steps)' if dataset in OVERRIDES else ''}.\n"
        f"  lmiqa protocol --config configs/{dataset}.yaml --dataset {dataset} --data-root DIR "
        f"--repeats 10 --output-dir runs/{dataset}-protocol"
    )
    values = paper_settings(dataset)
    body = {"preset": "paper", "dataset": dataset, **values}
    return _comment(header) + yaml.safe_dump(body, sort_keys=False)


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in text.splitlines())


def preset_yaml(name: str) -> str:
    """configs/<name>.yaml: a preset's keys, or a benchmark's paper config, under a
    comment saying what it reproduces."""
    if name in PAPER_DATASETS:
        return _paper_yaml(name)
    header = HEADERS.get(name, f"The `{name}` preset.")
    return _comment(header) + yaml.safe_dump(preset(name), sort_keys=False)


def write_all(folder: str) -> list[str]:
    """Every configs/*.yaml file, written atomically; returns their paths."""
    paths = []
    for name in (*HEADERS, *PAPER_DATASETS):
        path = os.path.join(folder, f"{name}.yaml")
        with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
            handle.write(preset_yaml(name))
        paths.append(path)
    return paths


if __name__ == "__main__":
    if sys.argv[1:2] == ["--all"]:
        print("\n".join(write_all(sys.argv[2] if len(sys.argv) > 2 else "configs")))
    else:
        sys.stdout.write(preset_yaml(sys.argv[1] if len(sys.argv) > 1 else "cpu-demo"))
