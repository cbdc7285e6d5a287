"""`--max-image-mb`, shared by the commands that read image files a user points at."""

from __future__ import annotations

import argparse
import math

from keras_lmiqa.constants import DEFAULT_MAX_FILE_BYTES, MIB
from keras_lmiqa.errors import ConfigError


def add_max_image_mb(parser: argparse.ArgumentParser, refused: str) -> None:
    """Adds the flag; `refused` says what happens to a larger file."""
    parser.add_argument("--max-image-mb", type=float, default=DEFAULT_MAX_FILE_BYTES / MIB, metavar="MB",
                        help=f"image files above this size {refused} (default {DEFAULT_MAX_FILE_BYTES // MIB})")


def max_file_bytes(args: argparse.Namespace) -> int:
    """The flag in bytes; ConfigError unless it is a finite number > 0."""
    if not (math.isfinite(args.max_image_mb) and args.max_image_mb > 0):
        raise ConfigError(f"--max-image-mb must be a number > 0, got {args.max_image_mb}")
    return int(args.max_image_mb * MIB)
