"""`lmiqa ablate`: the full model and each ablation on the same splits, in one table.

    lmiqa ablate --config configs/cpu-demo.yaml --dataset demo --repeats 1 --output-dir runs/demo-ablation

Variants: full, no-intra-negatives, no-mutual, no-saliency (random anchor),
no-contrastive and regression (all four off); `--variants` picks some (full is always
run). Each variant is a protocol in OUT/<variant>/ (resumable; OUT defaults to
runs/<dataset>-ablation); OUT/ablation.{json,csv,md}
holds median and std of test SRCC and PLCC per variant and the delta vs full.
Training flags are `lmiqa train`'s.
"""

from __future__ import annotations

import argparse

from keras_lmiqa.cli.protocol_cmd import add_common, print_config, resolve_training_config
from keras_lmiqa.config import ABLATION_VARIANTS as VARIANTS
from keras_lmiqa.research.tables import markdown


def run(args: argparse.Namespace) -> int:
    from keras_lmiqa.research.ablation import run_ablation

    config, output_dir = resolve_training_config(args, "ablation")
    if args.print_config:
        return print_config(config)
    variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
    data = run_ablation(config, args.repeats, output_dir, variants=variants)
    print(markdown(["variant", "srcc median", "srcc delta", "plcc median", "plcc delta"], data["rows"]), end="")
    print(f"table: {output_dir}/ablation.md")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("ablate", help="run the ablations on the same splits and compare",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(parser, repeats=1)
    parser.add_argument("--variants", metavar="A,B", help=f"comma-separated subset of {', '.join(VARIANTS)}")
    parser.set_defaults(func=run)
