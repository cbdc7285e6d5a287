"""`lmiqa train` / `python train.py`: flags and config files to a TrainConfig, then train.

Precedence, lowest first: TrainConfig defaults (docs/method.md), the preset (`cpu-demo` is
the default for `--dataset demo`), `--config FILE`, then flags and `--set KEY=VALUE`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from keras_lmiqa import config as config_lib
from keras_lmiqa.errors import ConfigError

# flag -> config key, for flags that take a value.
VALUE_FLAGS = {
    "--data-root": ("data_root", str), "--backbone": ("backbone", str), "--weights": ("weights", str),
    "--epochs": ("epochs", int), "--batch-size": ("batch_size", int), "--crops": ("num_crops", int),
    "--positives": ("num_positives", int), "--crop-size": ("crop_size", int), "--lr": ("lr", float),
    "--split-seed": ("split_seed", int), "--output-dir": ("output_dir", str), "--strategy": ("strategy", str),
    "--branch-mode": ("branch_mode", str), "--momentum": ("momentum", float), "--temperature": ("temperature", float),
    "--intra-weight": ("intra_weight", float), "--lambda-lm": ("lambda_lm", float),
    "--lambda-mut": ("lambda_mut", float),
    "--seed": ("seed", int), "--cache": ("cache", str), "--on-bad-image": ("on_bad_image", str),
    "--steps-per-epoch": ("steps_per_epoch", int), "--grid-size": ("grid_size", int),
    "--export-branch": ("export_branch", str), "--lambda-mse": ("lambda_mse", float),
    "--head-lr-multiplier": ("head_lr_multiplier", float), "--cache-budget-gb": ("cache_budget_gb", float),
}
# ablation switch -> config key set to False.
ABLATIONS = {
    "--no-intra-negatives": "use_intra_negatives", "--no-mutual": "use_mutual",
    "--no-saliency": "use_saliency", "--no-contrastive": "use_contrastive",
}


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {config_lib.shown(text)}")
    key, value = text.split("=", 1)
    try:  # typed (numbers, booleans, lists), never eval; bounded like a config file
        return key.strip(), config_lib.parse_yaml(value, f"value of {config_lib.shown(key.strip())}")
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(config_lib.TrainConfig)}


def _config_key_value(text: str) -> tuple[str, object]:
    """`--set KEY=VALUE`, the value read for the key's type: text for a text key
    (`data_root=2024` is a folder), a float for a float key (YAML reads `1e-4` as text).
    A value that still does not fit is refused by `config.from_dict`, naming the key."""
    key, value = _key_value(text)
    kind = _FIELD_TYPES.get(key, "")
    if kind.startswith("str") and value is not None and not isinstance(value, str):
        value = text.split("=", 1)[1].strip()
    elif kind == "float" and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # No default here: unset means "the config file's dataset key, else demo", so an
    # explicit --dataset always wins over the file.
    parser.add_argument("--dataset", default=None,
                        help="dataset name (default: the config file's, else "
                             f"{config_lib.TrainConfig.dataset}, built in)")
    parser.add_argument("--config", help="YAML or JSON config file")
    parser.add_argument("--preset", choices=sorted(config_lib.PRESETS),
                        help="named settings (default: cpu-demo for demo)")
    for flag, (key, kind) in VALUE_FLAGS.items():
        parser.add_argument(flag, dest=key, type=kind, default=None, help=f"config key {key}")
    parser.add_argument("--mixed-precision", dest="mixed_precision", action="store_true", default=None,
                        help="mixed float16 compute (GPU)")
    parser.add_argument("--jit-compile", dest="jit_compile", action="store_true", default=None,
                        help="XLA-compile the step")
    parser.add_argument("--deterministic", dest="deterministic", action="store_true", default=None,
                        help="deterministic TF ops: a rerun reproduces the run bit for bit")
    for flag, key in ABLATIONS.items():
        parser.add_argument(flag, dest=key, action="store_false", default=None, help=f"ablation: {key}=false")
    parser.add_argument("--dataset-option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="reader option, e.g. resolution=1024x768 for koniq10k")
    parser.add_argument("--set", action="append", type=_config_key_value, default=[], metavar="KEY=VALUE",
                        help="any config key, e.g. --set lambda_lm=0.5")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    parser.add_argument("--quiet", action="store_true",
                        help="no per-epoch progress bar (it shows only on a terminal anyway)")


def resolve_config(args: argparse.Namespace) -> config_lib.TrainConfig:
    """Flags and `--set` over the config file over the preset over TrainConfig's defaults."""
    values: dict = {}
    from_file = config_lib.load_file(args.config) if args.config else {}
    dataset = args.dataset or from_file.get("dataset") or config_lib.TrainConfig.dataset
    preset = args.preset or ("cpu-demo" if dataset == "demo" and not args.config else None)
    if preset:
        values.update(config_lib.preset(preset))
    values.update(from_file)
    values["dataset"] = dataset
    keys = ([key for key, _ in VALUE_FLAGS.values()] + list(ABLATIONS.values())
            + ["mixed_precision", "jit_compile", "deterministic"])
    for key in keys:
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    if args.dataset_option:
        values["dataset_options"] = {**values.get("dataset_options", {}), **dict(args.dataset_option)}
    values.update(dict(args.set))
    values.setdefault("output_dir", f"runs/{values['dataset']}")
    return config_lib.from_dict(values)


def run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2, sort_keys=True))
        return 0
    from keras_lmiqa.research.report import write_report  # heavy imports only when training
    from keras_lmiqa.training import train

    result = train(config, progress=False if args.quiet else None)
    if result.metrics:  # the chief's finished run folder (other workers write none)
        # Drawn from the files train() saved: if it fails, ReportError names the cause and
        # the results stay saved (`lmiqa report RUN_DIR` rebuilds it).
        write_report(result.run_dir)
    test = result.metrics.get("test", {})
    if test:
        print(f"test SRCC {test['srcc']:.4f} PLCC {test['plcc']:.4f} (n={test['n']}); run folder: {result.run_dir}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train LML-IQA on a dataset", description=__doc__)
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `train.py`: the `lmiqa train` command on its own."""
    from keras_lmiqa.cli import main as lmiqa_main

    return lmiqa_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
