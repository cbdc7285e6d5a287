"""`lmiqa explain IMAGE --model PATH --out explain.png`: why an image got its score.

Draws the inference crop grid (colour = importance weight, label = the crop's quality
score), the spectral-residual saliency map and the image's score.
"""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from keras_lmiqa.research.explain import explain_image

    explanation = explain_image(args.image, args.model, args.out)
    print(f"{args.image}: quality {explanation['score']:.4f} (mos {explanation['mos']:.4f}); figure: {args.out}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("explain", help="draw an image's crops, weights, saliency and score",
                                   description=__doc__)
    parser.add_argument("image", metavar="IMAGE", help="image file")
    parser.add_argument("--model", required=True, help="run folder, model.keras, export folder or version folder")
    parser.add_argument("--out", default="explain.png", help="PNG to write (default explain.png)")
    parser.set_defaults(func=run)
