"""`InferenceSpec`: how a trained model turns one image into a score, frozen and serialisable.

The evaluation pipeline (`pipeline.inference_dataset`), the standalone Keras model
(`models.image_quality`), the SavedModel export and `load_scorer` all read the window
grid, saliency, working size and pixel limit from this one object; it is derived from a run's
`TrainConfig` in one place (`InferenceSpec.from_config`) and stored inside the saved
`model.keras` (the preprocessor's `get_config`), so a model file scores images with no
config.json beside it. TensorFlow-free: it is plain data.
"""

from __future__ import annotations

import dataclasses

from keras_lmiqa.errors import ModelError, shown

# Scores beyond this magnitude are refused: their range (high - low) would overflow to inf
# and normalise every image to NaN or 0, and a model stores its scale within it
# (`FIELD_BOUNDS`).
MAX_ABS_SCORE = 1e9


@dataclasses.dataclass(frozen=True)
class ScoreScale:
    """The score range of a dataset and its direction.

    `low`/`high` are the lowest and highest score in the dataset; `higher_better` is
    False for DMOS datasets (LIVE, CSIQ).
    """

    low: float
    high: float
    higher_better: bool
    kind: str = "MOS"  # "MOS" or "DMOS" (or a free label for custom CSVs)

    def to_quality(self, mos: float) -> float:
        """Map a score on this scale to [0, 1], higher = better."""
        span = self.high - self.low
        unit = (mos - self.low) / span if span > 0 else 0.5
        return unit if self.higher_better else 1.0 - unit

    def to_mos(self, quality):
        """Inverse of :meth:`to_quality`; works on floats and NumPy arrays."""
        unit = quality if self.higher_better else 1.0 - quality
        return self.low + unit * (self.high - self.low)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The inference window set (`crops.grid_windows`): at native scale (r = 1) windows tile
# the image (ceil(H/S) x ceil(W/S)), at each coarser scale a grid_size x grid_size grid,
# duplicates removed. NATIVE_RULE tiles the decoded image at its own pixels (models saved
# without a working size keep it, bit for bit); WORKING_SIZE_RULE first brings an image
# whose long side exceeds `working_long_side` down to it (`keras_lmiqa.working_size`).
# A model saved with another rule name was made by a version of keras_lmiqa that cuts
# other windows: it is refused rather than scored differently.
NATIVE_RULE = "native-tiles+coarse-grid/v1"
WORKING_SIZE_RULE = "working-size+native-tiles+coarse-grid/v2"
WINDOW_RULES = (NATIVE_RULE, WORKING_SIZE_RULE)
WINDOW_RULE = WORKING_SIZE_RULE  # the rule of a spec with a working size
SPEC_FORMAT = 1
# Fields a spec saved by an earlier keras_lmiqa may lack, and the value that keeps its behaviour.
OPTIONAL_FIELDS = {"working_long_side": 0}


@dataclasses.dataclass(frozen=True)
class InferenceSpec:
    """The inference settings of a trained model.

    Attributes:
        crop_size: side S of the model's square input crops, pixels.
        scales: window scales r (window side round(S / r)); r = 1 tiles the image.
        grid_size: windows per axis at each coarser scale.
        saliency_long_side: long side of the spectral-residual saliency map, pixels.
        max_pixels: largest image (H * W) accepted.
        working_long_side: an image whose long side exceeds this is downscaled to it
            (antialiased, aspect ratio kept) before windows and saliency are made; 0
            scores every image at its native pixels (`NATIVE_RULE`, older models).
        score_low, score_high, higher_better, score_kind: the training dataset's score
            scale and direction, for the `mos` output (see `ScoreScale`).
        dataset: the training dataset's name.
        export_branch: the branch the model holds ("teacher" / "student"; "auto" when
            the run did not record it).
        window_rule: the window set rule, implied by `working_long_side`: `NATIVE_RULE`
            without one, `WORKING_SIZE_RULE` with one (left out, it is filled in).
    """

    crop_size: int
    scales: tuple[float, ...]
    grid_size: int
    saliency_long_side: int
    max_pixels: int
    working_long_side: int = 0
    score_low: float = 0.0
    score_high: float = 1.0
    higher_better: bool = True
    score_kind: str = "MOS"
    dataset: str = ""
    export_branch: str = "auto"
    window_rule: str = ""

    def __post_init__(self):
        if isinstance(self.scales, (list, tuple)) and len(self.scales) <= MAX_SCALES:
            object.__setattr__(self, "scales", tuple(float(s) if _is_number(s) else s for s in self.scales))
        if not self.window_rule:
            object.__setattr__(self, "window_rule", WORKING_SIZE_RULE if self.working_long_side else NATIVE_RULE)
        _validate(self)

    @property
    def max_windows(self) -> int:
        """Most inference windows one image can have (`crops.grid_windows`).

        With a working size L: an image is at most L on its long side, so ceil(L/S)^2
        native tiles when its short side is >= S (16 for L = 512, S = 128), at most L for a
        strip thinner than S (one window per short side along it), plus grid_size^2 per
        coarser scale. Without one: 2 * ceil(max_pixels / S^2) + 2 native tiles for an
        image with both sides >= S (`scoring.prepare_encoded` refuses thinner strips above it).
        """
        coarse = len(self.scales) * self.grid_size ** 2
        side = self.crop_size
        if self.working_long_side:
            per_axis = -(-self.working_long_side // side)
            return max(per_axis * per_axis, self.working_long_side) + coarse
        return 2 * -(-self.max_pixels // (side * side)) + 2 + coarse

    @classmethod
    def from_config(cls, config, scale: ScoreScale | None = None, dataset: str | None = None,
                    export_branch: str | None = None) -> InferenceSpec:
        """The spec of a run's `TrainConfig` (and its dataset's score scale): the one derivation."""
        scale = scale or ScoreScale(0.0, 1.0, True)
        return cls(crop_size=int(config.crop_size), scales=tuple(config.scales), grid_size=int(config.grid_size),
                   saliency_long_side=int(config.saliency_long_side), max_pixels=int(config.max_pixels),
                   working_long_side=int(getattr(config, "working_long_side", 0)),
                   score_low=float(scale.low), score_high=float(scale.high), higher_better=bool(scale.higher_better),
                   score_kind=str(scale.kind), dataset=str(config.dataset if dataset is None else dataset),
                   export_branch=str(config.export_branch if export_branch is None else export_branch))

    @property
    def scale(self) -> ScoreScale:
        return ScoreScale(self.score_low, self.score_high, self.higher_better, self.score_kind)

    def to_dict(self) -> dict:
        return {"format": SPEC_FORMAT, **dataclasses.asdict(self), "scales": list(self.scales)}

    @classmethod
    def from_dict(cls, values) -> InferenceSpec:
        """The spec `to_dict` wrote; ModelError naming the field when it is missing or wrong."""
        if not isinstance(values, dict):
            raise ModelError(f"inference spec must be a dict, got {type(values).__name__}")
        values = dict(values)
        found = values.pop("format", None)
        if found != SPEC_FORMAT:
            raise ModelError(f"inference spec format {found!r} is not {SPEC_FORMAT} "
                             "(saved by another version of keras_lmiqa?)")
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ModelError(f"inference spec has unknown field(s) {', '.join(unknown)}")
        for name, value in OPTIONAL_FIELDS.items():
            values.setdefault(name, value)
        missing = sorted(name for name in names - set(values))
        if missing:
            raise ModelError(f"inference spec lacks field(s) {', '.join(missing)}")
        return cls(**values)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_inference_spec(settings) -> InferenceSpec:
    """`settings` if it is an InferenceSpec, else the spec of that TrainConfig."""
    return settings if isinstance(settings, InferenceSpec) else InferenceSpec.from_config(settings)


# Hard bounds (inclusive) of the numeric fields, checked whenever a spec is made, so also
# when a model file or a shipped card is loaded: a model file is data, and a crafted value
# (crop_size 10^6, grid_size 10^5, max_pixels 10^12) would make scoring allocate terabytes
# or lift the pixel limit. A sequence field's bounds apply to each item. A field may be
# None only where its type allows it. A new field adds its row here.
FIELD_BOUNDS: dict[str, tuple[float, float]] = {
    "crop_size": (16, 1024),  # TrainConfig's range
    "scales": (1 / 64, 1.0),
    "grid_size": (1, 32),  # grid_size^2 windows per coarser scale
    "saliency_long_side": (8, 2048),
    "max_pixels": (1, 1_000_000_000),  # a gigapixel: 3 GB decoded
    "working_long_side": (0, 16_384),  # 0: native pixels
    "score_low": (-MAX_ABS_SCORE, MAX_ABS_SCORE),
    "score_high": (-MAX_ABS_SCORE, MAX_ABS_SCORE),
}
MAX_SCALES = 8


def bound_problem(name: str, value) -> str | None:
    """Why `value` is not a valid value of spec field `name` by `FIELD_BOUNDS`, or None."""
    low, high = FIELD_BOUNDS[name]
    kind = _FIELD_TYPES[name]
    if value is None and kind.endswith("| None"):
        return None
    whole = kind.startswith("int")
    items = value if isinstance(value, (list, tuple)) and kind.startswith("tuple") else [value]
    if kind.startswith("tuple") and not 1 <= len(items) <= MAX_SCALES:
        return f"{name} must hold 1 to {MAX_SCALES} values, got {_shown(value)}"
    for item in items:
        number = isinstance(item, (int, float)) and not isinstance(item, bool) and (not whole or isinstance(item, int))
        if not number or not low <= item <= high:  # NaN fails the comparison
            what = "an integer" if whole else "a number"
            each = " each" if len(items) > 1 or kind.startswith("tuple") else ""
            return f"{name} must{each} be {what} in [{low:g}, {high:g}], got {_shown(value)}"
    return None


def _shown(value) -> str:
    return shown(list(value) if isinstance(value, tuple) else value)


def _validate(spec: InferenceSpec) -> None:
    for name in FIELD_BOUNDS:
        problem = bound_problem(name, getattr(spec, name))
        if problem:
            raise ModelError(f"inference spec: {problem}")
    if not isinstance(spec.higher_better, bool):
        raise ModelError(f"inference spec: higher_better must be true or false, got {_shown(spec.higher_better)}")
    if spec.window_rule not in WINDOW_RULES:
        raise ModelError(f"inference spec: window_rule {_shown(spec.window_rule)} is not this version's "
                         f"{NATIVE_RULE!r} or {WORKING_SIZE_RULE!r} (the model was saved by another version "
                         "of keras_lmiqa)")
    implied = WORKING_SIZE_RULE if spec.working_long_side else NATIVE_RULE
    if spec.window_rule != implied:
        raise ModelError(f"inference spec: window_rule {spec.window_rule!r} does not match working_long_side="
                         f"{spec.working_long_side} (which implies {implied!r})")
    if spec.working_long_side and spec.working_long_side < spec.crop_size:
        raise ModelError(f"inference spec: working_long_side must be 0 or >= crop_size ({spec.crop_size}), "
                         f"got {spec.working_long_side}")


_FIELD_TYPES = {field.name: str(field.type) for field in dataclasses.fields(InferenceSpec)}


__all__ = ["FIELD_BOUNDS", "InferenceSpec", "NATIVE_RULE", "OPTIONAL_FIELDS", "SPEC_FORMAT", "WINDOW_RULE",
           "WINDOW_RULES", "WORKING_SIZE_RULE", "as_inference_spec", "bound_problem"]
