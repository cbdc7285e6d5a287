"""configs/: every file loads, the paper configs are the paper preset, cpu-demo.yaml is the live preset."""

import os

import pytest

from keras_lmiqa.config import TrainConfig, from_dict, load_file, preset
from keras_lmiqa.datasets import NAMES
from keras_lmiqa.research.configs import paper_settings, preset_yaml

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "configs")
BENCHMARKS = ("kadid10k", "tid2013", "live", "csiq", "livec", "koniq10k", "spaq", "livefb")
SIZES = {"kadid10k": 10_125, "tid2013": 3_000, "live": 779, "csiq": 866, "livec": 1_162, "koniq10k": 10_073,
         "spaq": 11_125, "livefb": 39_810}  # images


def test_every_config_loads_and_says_what_it_reproduces():
    names = sorted(os.listdir(CONFIGS))
    cpu = ["cpu-demo.yaml", "cpu-photos.yaml", "cpu-general.yaml"]
    assert names == sorted([f"{name}.yaml" for name in BENCHMARKS] + cpu)
    for name in names:
        path = os.path.join(CONFIGS, name)
        from_dict(load_file(path))
        first = open(path).readline()
        assert first.startswith("# ") and "reproduce" in first.lower(), name


@pytest.mark.parametrize("dataset", BENCHMARKS)
def test_paper_configs_are_the_paper_preset_on_their_dataset(dataset):
    assert dataset in NAMES
    path = os.path.join(CONFIGS, f"{dataset}.yaml")
    assert open(path).read() == preset_yaml(dataset), "regenerate: python -m keras_lmiqa.research.configs --all configs"
    config = from_dict(load_file(path))
    assert config == from_dict(paper_settings(dataset))
    # ImageNet ViT-S/16 on 224 px crops, the method's defaults, per-dataset schedule.
    assert (config.backbone, config.weights, config.crop_size, config.test_fraction) == (
        "vit_s16", "imagenet", 224, 0.2)
    defaults = TrainConfig()
    assert (config.temperature, config.lambda_lm, config.lambda_mut, config.head_lr_multiplier, config.lambda_rank) == (
        defaults.temperature, defaults.lambda_lm, defaults.lambda_mut, defaults.head_lr_multiplier, 0.0)
    steps = config.epochs * 0.72 * SIZES[dataset] / config.batch_size  # train part: 80% less its 10% validation
    assert 1_000 < steps < 6_000, steps
    assert config.lr == pytest.approx(1e-4 * config.batch_size / 16)  # the linear rule


def test_print_config_shows_the_pretrained_paper_settings():
    import json
    import subprocess
    import sys

    root = os.path.dirname(CONFIGS)
    result = subprocess.run([sys.executable, "train.py", "--config", "configs/koniq10k.yaml", "--print-config"],
                            cwd=root, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    shown = json.loads(result.stdout)
    assert (shown["dataset"], shown["backbone"], shown["weights"]) == ("koniq10k", "vit_s16", "imagenet")
    assert (shown["epochs"], shown["batch_size"], shown["lr"]) == (12, 32, 2e-4)


@pytest.mark.parametrize("name", ["cpu-demo", "cpu-photos", "cpu-general"])
def test_cpu_yaml_files_are_their_presets(name):
    values = load_file(os.path.join(CONFIGS, f"{name}.yaml"))
    assert values == preset(name), f"regenerate: python -m keras_lmiqa.research.configs {name} > configs/{name}.yaml"
    assert from_dict(values) == from_dict(preset(name))


def test_cpu_photos_preset_fine_tunes_imagenet_mobilenet_v2():
    config = from_dict(preset("cpu-photos"))
    assert (config.backbone, config.weights, config.crop_size, config.num_crops, config.num_positives) == (
        "mobilenet_v2", "imagenet", 128, 4, 1)
    # The heads learn 10x faster than the pretrained backbone.
    assert config.head_lr_multiplier == 10.0 and config.lr < 1e-3
