"""The YAML form of a preset, so `configs/<preset>.yaml` can be regenerated from the code:

    python -m keras_lmiqa.research.configs cpu-demo > configs/cpu-demo.yaml
    python -m keras_lmiqa.research.configs cpu-photos > configs/cpu-photos.yaml
"""

from __future__ import annotations

import sys

import yaml

from keras_lmiqa.config import preset

HEADERS = {
    "cpu-demo": ("Reproduces the CPU demo on the built-in demo dataset (the README's demo tables):\n"
                 "the `cpu-demo` preset, what `lmiqa train --dataset demo` uses by default, sized for\n"
                 "a 2-core CPU.\n"
                 "  lmiqa protocol --config configs/cpu-demo.yaml --dataset demo --repeats 3 "
                 "--output-dir runs/demo-protocol\n"
                 "  lmiqa ablate --config configs/cpu-demo.yaml --dataset demo --output-dir runs/demo-ablation"),
    "cpu-photos": ("Reproduces the README's real-photograph table (BIQ2021, official split) on a\n"
                   "2-core CPU: the `cpu-photos` preset, ImageNet MobileNetV2 (weights: imagenet; pass\n"
                   "--weights PATH where it cannot download), 128 px crops, K=4, P=1, 300 steps of 16.\n"
                   "  lmiqa ablate --config configs/cpu-photos.yaml --dataset biq2021 --data-root DIR "
                   "--variants regression --repeats 3 --output-dir runs/biq2021-ablation"),
}


def preset_yaml(name: str) -> str:
    """The preset's keys as YAML, under a comment saying what it reproduces."""
    header = HEADERS.get(name, f"The `{name}` preset.")
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump(preset(name), sort_keys=False)


if __name__ == "__main__":
    sys.stdout.write(preset_yaml(sys.argv[1] if len(sys.argv) > 1 else "cpu-demo"))
