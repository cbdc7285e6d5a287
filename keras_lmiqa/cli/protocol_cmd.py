"""`lmiqa protocol`: the standard protocol, one training run per split seed, and its summary.

    lmiqa protocol --config configs/kadid10k.yaml --dataset kadid10k --data-root /data/kadid10k \\
        --repeats 10 --output-dir runs/kadid10k-protocol [--cross live:/data/live ...]

Each split trains in OUT/split-<seed>/ (OUT: --output-dir, default runs/<dataset>-protocol;
seeds from --split-seed, default 0); the table of
test SRCC, PLCC, KRCC, RMSE per split with their median and sample std is written as
OUT/summary.{json,csv,md}. Rerun the same command after an interruption: finished
splits are not retrained, a half-finished one resumes from its backup. `--cross
[LABEL=]NAME[:ROOT][,KEY=VALUE...]` also scores each split's model on another dataset
(all its images) and adds its SRCC/PLCC to the table. Training flags are `lmiqa train`'s.
"""

from __future__ import annotations

import argparse
import json

from keras_lmiqa.cli import train_cmd


def resolve_training_config(args: argparse.Namespace, suffix: str):
    """The training config from `lmiqa train`'s flags; the folder defaults to runs/<dataset>-<suffix>."""
    given = args.output_dir
    config = train_cmd.resolve_config(args)
    return config, given or f"runs/{config.dataset}-{suffix}"


def print_config(config) -> int:
    print(json.dumps(config.to_dict(), indent=2, sort_keys=True))
    return 0


def add_common(parser: argparse.ArgumentParser, repeats: int) -> None:
    train_cmd.add_arguments(parser)
    parser.add_argument("--repeats", type=int, default=repeats, help=f"number of split seeds (default {repeats})")


def run(args: argparse.Namespace) -> int:
    from keras_lmiqa.research.crossdata import parse_dataset_spec
    from keras_lmiqa.research.protocol import run_protocol

    config, output_dir = resolve_training_config(args, "protocol")
    cross = [parse_dataset_spec(text) for text in args.cross]
    if args.print_config:
        return print_config(config)
    data = run_protocol(config, args.repeats, output_dir, cross=cross)
    s = data["summary"]
    print(f"{config.dataset}, {s['n_splits']} splits: "
          f"median SRCC {s['srcc']['median']:.4f} (std {s['srcc']['std']:.4f}), "
          f"median PLCC {s['plcc']['median']:.4f} (std {s['plcc']['std']:.4f}); table: {output_dir}/summary.md")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("protocol", help="train on N split seeds and summarise (median, std)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(parser, repeats=10)
    parser.add_argument("--cross", action="append", default=[], metavar="[LABEL=]NAME[:ROOT]",
                        help="also score each split's model on this dataset (all images)")
    parser.set_defaults(func=run)
