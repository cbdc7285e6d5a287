"""configs/: every file loads, the paper configs are the paper preset, cpu-demo.yaml is the live preset."""

import os

import pytest

from keras_lmiqa.config import from_dict, load_file, preset
from keras_lmiqa.datasets import NAMES

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "configs")
BENCHMARKS = ("kadid10k", "tid2013", "live", "csiq", "livec", "koniq10k", "spaq", "livefb")


def test_every_config_loads_and_says_what_it_reproduces():
    names = sorted(os.listdir(CONFIGS))
    assert names == sorted([f"{name}.yaml" for name in BENCHMARKS] + ["cpu-demo.yaml"])
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


def test_cpu_demo_yaml_is_the_cpu_demo_preset():
    values = load_file(os.path.join(CONFIGS, "cpu-demo.yaml"))
    assert values == preset("cpu-demo"), "regenerate: python -m keras_lmiqa.research.configs cpu-demo > configs/cpu-demo.yaml"
    assert from_dict(values) == from_dict(preset("cpu-demo"))
