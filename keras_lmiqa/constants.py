"""Names and limits shared by training, export, the scorer, the server and the clients.

One definition each, so the exporter, the scorer, the development server and the
clients cannot drift apart. Standard library only: no TensorFlow, no Keras (the module
loads on its own, e.g. from deployment tooling).
"""

from __future__ import annotations

import os

# The served model's name: what exports write into their warm-up requests, what
# `lmiqa serve` answers to and what the clients ask for by default.
MODEL_NAME = "lmiqa"

# Export folder layout: EXPORT_DIR/<version>/saved_model.pb, assets.extra/...
SAVED_MODEL_FILE = "saved_model.pb"
ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = os.path.join(ASSETS_EXTRA, "tf_serving_warmup_requests")  # TF Serving's --enable_model_warmup file
METADATA_FILE = "lmiqa_metadata.json"  # in ASSETS_EXTRA: the model's spec and provenance

# The export's signatures and the input each takes.
BYTES_SIGNATURE = "serving_default"  # encoded images tf.string [batch]
PIXELS_SIGNATURE = "score_pixels"  # uint8 [batch, H, W, 3], one size
SIGNATURE_INPUTS = {BYTES_SIGNATURE: "images", PIXELS_SIGNATURE: "pixels"}

# What every exported signature answers with, per image:
SCORE_KEYS = ("score", "mos")  # one value: normalised quality (higher = better) and the dataset's scale
CROP_KEYS = ("crop_scores", "crop_weights", "crop_windows", "crop_saliency")  # one row per crop window
OUTPUT_KEYS = SCORE_KEYS + CROP_KEYS

MIB = 2 ** 20  # bytes in a MiB: sizes on the command line and in messages are in MiB

# Largest gRPC/REST message (request or answer) the clients and `lmiqa serve` accept by default.
MAX_MESSAGE_BYTES = 32 * MIB

# Images per model call when scoring files: the scorer and the evaluation (validation,
# test, `lmiqa eval`) use the same, so a file's score does not depend on the route.
SCORING_BATCH_SIZE = 32
# Image files above this are refused before reading, in process; a file sent to a server
# is bounded by MAX_MESSAGE_BYTES instead (a larger request could not be sent).
DEFAULT_MAX_FILE_BYTES = 64 * MIB


def version_dirs(export_dir: str) -> dict[int, str]:
    """{version: folder} of the servable versions under `export_dir`.

    A version is a folder named by a decimal number that holds a SavedModel
    (`saved_model.pb`): the rule TF Serving applies, used by the exporter (next version
    number), the scorer (newest version) and `lmiqa serve` alike, so none of them picks a
    folder another skips. A killed export leaves only a hidden `.tmp-*` folder, never a
    numbered one without its SavedModel. Raises OSError when `export_dir` cannot be
    listed (a missing folder has no versions).
    """
    if not os.path.isdir(export_dir):
        return {}
    found = {}
    for name in os.listdir(export_dir):
        path = os.path.join(export_dir, name)
        if name.isascii() and name.isdigit() and os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
            found[int(name)] = path
    return dict(sorted(found.items()))
