"""configs/: every file loads, the paper configs are the paper preset, cpu-demo.yaml is the live preset."""

import os

import pytest

from keras_lmiqa.config import from_dict, load_file, preset
from keras_lmiqa.datasets import NAMES

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "configs")
BENCHMARKS = ("kadid10k", "tid2013", "live", "csiq", "livec", "koniq10k", "spaq", "livefb")


def test_every_config_loads_and_says_what_it_reproduces():
    names = sorted(os.listdir(CONFIGS))
    assert names == sorted([f"{name}.yaml" for name in BENCHMARKS] + ["cpu-demo.yaml", "cpu-photos.yaml"])
    for name in names:
        path = os.path.join(CONFIGS, name)
        from_dict(load_file(path))
        first = open(path).readline()
        assert first.startswith("# ") and "reproduce" in first.lower(), name


@pytest.mark.parametrize("dataset", BENCHMARKS)
def test_paper_configs_are_the_paper_preset_on_their_dataset(dataset):
    assert dataset in NAMES
    config = from_dict(load_file(os.path.join(CONFIGS, f"{dataset}.yaml")))
    assert config == from_dict({**preset("paper"), "dataset": dataset})
    assert config.backbone == "vit_s16" and config.crop_size == 224 and config.test_fraction == 0.2


@pytest.mark.parametrize("name", ["cpu-demo", "cpu-photos"])
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
