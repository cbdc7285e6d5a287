"""Training configuration: one frozen dataclass, validated on construction.

Defaults follow `docs/method.md` (the paper protocol). `PRESETS` holds named overrides,
e.g. `cpu-demo`, the CPU-sized settings `train.py --dataset demo` uses by default.
Config files (YAML or JSON) and flags are read only at the edges (`from_dict`,
`load_file`); unknown keys are refused with the closest valid key suggested.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import numbers
import os
from collections.abc import Mapping
from typing import Any

from keras_lmiqa.errors import ConfigError, shown
from keras_lmiqa.inference_spec import FIELD_BOUNDS, bound_problem

BACKBONES = ("tiny", "mobilenet_v2", "mobilenet_v3_small", "resnet50", "efficientnet_v2_b0", "convnext_tiny", "vit_s16")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
BRANCH_MODES = ("ema", "dml")
EXPORT_BRANCHES = ("auto", "teacher", "student")
CLIP_MODES = ("per_term", "global")
# Families of in-graph synthetic distortions (`keras_lmiqa.synthetic`), in a fixed order.
SYNTHETIC_FAMILIES = ("noise_luma", "noise_color", "jpeg", "blur_gaussian", "blur_motion", "over_exposure",
                      "under_exposure", "contrast", "downscale", "saturation")
SYNTHETIC_SIBLINGS = ("negative", "neutral")  # how a group's members see each other in L_lm
# The method's components that `TrainConfig` can switch off (ablations).
SWITCHES = ("use_intra_negatives", "use_mutual", "use_saliency", "use_contrastive")
# ablation variant -> the switches it turns off.
ABLATION_VARIANTS = {
    "full": (),
    "no-intra-negatives": ("use_intra_negatives",),
    "no-mutual": ("use_mutual",),
    "no-saliency": ("use_saliency",),
    "no-contrastive": ("use_contrastive",),
    "regression": SWITCHES,  # plain quality regression: every component off
}
# What `backbone_options` may set for vit_s16 (keras_hub.models.DeiTBackbone arguments).
VIT_ARCHITECTURE_KEYS = ("patch_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything needed to rebuild a model and reproduce a training run.

    Data: `dataset`, `data_root`, `dataset_options` (reader options), split settings.
    Crops: `crop_size` (model input side), `scales` (window side = crop_size / r),
    `num_crops` (K random windows per image), `num_positives` (P other-scale views of
    the anchor), `grid_size` (inference windows per coarser scale and axis; at native
    scale the windows tile the image, so the window count depends on the image size).
    Method: temperatures, loss weights and the ablation switches (`use_*`).
    """

    # data
    dataset: str = "demo"
    data_root: str | None = None
    dataset_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    split_seed: int = 0
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    use_official_split: bool = True
    # "encoded" (file bytes in RAM, decoded every pass), "decoded" (pixels in RAM, under
    # cache_budget_gb), "none" (read files every pass) or a file prefix for tf.data's cache.
    cache: str = "encoded"
    cache_budget_gb: float = 4.0
    on_bad_image: str = "error"
    max_pixels: int = 50_000_000  # images above this pixel count are refused
    # Images whose long side exceeds this are downscaled to it (antialiased) for training
    # and scoring: the resolution of the training photos (keras_lmiqa.working_size). 0:
    # native pixels at any size.
    working_long_side: int = 0
    # crops
    crop_size: int = 224
    scales: tuple[float, ...] = (1.0, 0.75, 0.5)
    num_crops: int = 8
    num_positives: int = 2
    grid_size: int = 2
    saliency_long_side: int = 64
    flip: bool = True
    # model
    backbone: str = "mobilenet_v2"
    weights: str = "imagenet"
    # Architecture overrides of an untrained vit_s16 (keys VIT_ARCHITECTURE_KEYS), for
    # tests and CPU-sized runs; a pretrained preset fixes its own architecture.
    backbone_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    freeze_pretrained_bn: bool = True  # BatchNorm of a pretrained backbone keeps ImageNet statistics
    embedding_dim: int = 128
    head_units: int = 256
    dropout: float = 0.1
    branch_mode: str = "ema"
    # Teacher EMA: m_t = min(momentum, 1 - 1/t, 1 - 1/(teacher_horizon * total steps)):
    # a running mean of the student first, then an EMA whose time constant is at most
    # `teacher_horizon` of the run, so it tracks the student on any run length.
    momentum: float = 0.999
    teacher_horizon: float = 0.1
    export_branch: str = "auto"  # "auto": the branch validation picks; or "teacher" / "student"
    # losses
    temperature: float = 0.1
    intra_weight: float = 1.0
    intra_iou_threshold: float = 0.3  # a non-salient window overlapping the anchor's views more is neutral
    # The saliency KL's target is softmax(standardised window saliency / saliency_temperature).
    # Measured on the demo (epoch 2 val SRCC, docs/results.md): tau 0.1 / weight 1 (one-hot target,
    # the largest loss term) 0.35; tau 1 / weight 1 0.34; tau 0.1 / weight 0.1 0.55; tau 1 /
    # weight 0.1 0.64; no KL and random anchor 0.55.
    saliency_temperature: float = 1.0
    lambda_lm: float = 0.1
    lambda_mut: float = 1.0
    lambda_mse: float = 0.25  # weight of the MSE toward the teacher inside L_mut (off during warm-up)
    lambda_kl: float = 0.1  # weight of the saliency KL inside L_mut
    smooth_l1_beta: float = 0.05  # in units of the [0, 1] quality scale
    # Beyond the paper (docs/method.md, "Losses"): a pairwise ranking term on image scores (0 = off).
    lambda_rank: float = 0.0
    rank_temperature: float = 0.05
    # Synthetic ranking (docs/method.md, "Synthetic ranking"): each global batch also holds
    # `synthetic_groups` training photos, each with `synthetic_copies` distorted copies of
    # one family at distinct levels; a stronger level must score lower (0 groups = off).
    synthetic_groups: int = 0
    synthetic_copies: int = 2
    synthetic_families: tuple[str, ...] = SYNTHETIC_FAMILIES
    lambda_synthetic: float = 0.25
    synthetic_temperature: float = 0.05
    # How a group's members see each other in L_lm: "negative" (the same content at another
    # quality is a negative, like a non-salient window) or "neutral" (left out of each
    # other's denominator). Each member keeps its own anchor and positives either way.
    synthetic_siblings: str = "negative"
    use_contrastive: bool = True
    use_intra_negatives: bool = True
    use_mutual: bool = True
    use_saliency: bool = True
    # optimisation
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-4
    head_lr_multiplier: float = 10.0  # heads' lr / backbone's lr, for pretrained backbones only
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    clip_norm: float = 1.0
    # "per_term": the label terms and the contrastive term are each clipped to clip_norm,
    # so a large contrastive gradient cannot scale the quality gradient away (a second
    # backward pass: +16% epoch time on the demo); "global": one clip of their sum.
    clip_mode: str = "per_term"
    mixed_precision: bool = False
    jit_compile: bool = False
    # runtime
    strategy: str = "auto"
    output_dir: str = "runs/latest"
    seed: int = 0
    deterministic: bool = False  # TF op determinism: a rerun reproduces the weights bit for bit
    checkpoint_every: int = 50  # steps between mid-epoch backups (0: epoch ends only)
    steps_per_epoch: int | None = None  # cap, for quick experiments

    def __post_init__(self):
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        object.__setattr__(self, "synthetic_families", tuple(self.synthetic_families))
        object.__setattr__(self, "dataset_options", dict(self.dataset_options))
        object.__setattr__(self, "backbone_options", dict(self.backbone_options))
        _validate(self)

    @property
    def crops_per_image(self) -> int:
        """K training windows plus P positive views."""
        return self.num_crops + self.num_positives

    @property
    def images_per_step(self) -> int:
        """Images a global step trains on: the photos, plus each synthetic group's photo and copies."""
        return self.batch_size + self.synthetic_groups * (1 + self.synthetic_copies)

    def replace(self, **changes) -> TrainConfig:
        return from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["scales"] = list(self.scales)
        data["synthetic_families"] = list(self.synthetic_families)
        return data


FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))

PRESETS: dict[str, dict[str, Any]] = {
    # The paper protocol: ViT-S/16 from keras-hub's ImageNet DeiT-S preset (the field
    # starts from ImageNet weights; from scratch a ViT-S cannot learn IQA from 1k-10k
    # images), 224 px crops (the preset's side), the method's defaults. Per-dataset
    # epochs, batch sizes and learning rates: keras_lmiqa.research.configs (configs/*.yaml).
    "paper": {"backbone": "vit_s16", "weights": "imagenet", "crop_size": 224},
    # A 2-core CPU: small CNN, small crops, a few minutes on the demo set.
    "cpu-demo": {
        "backbone": "tiny",
        "weights": "none",
        "crop_size": 64,
        "num_crops": 4,
        "num_positives": 1,
        "grid_size": 2,
        # Validation scores both branches on the native-scale tiling (24 windows): 6
        # epochs keep the demo, with its 60 s build, under 10 minutes on 2 cores.
        "epochs": 6,
        "batch_size": 16,
        "lr": 2e-3,
        # A short run needs the quality signal to dominate early: an L1-like quality
        # loss on the [0, 1] scale and a lighter contrastive term.
        "smooth_l1_beta": 0.05,
        "lambda_lm": 0.1,
        "weight_decay": 1e-4,
        "warmup_epochs": 0.3,
        "momentum": 0.98,
        "head_units": 128,
        "embedding_dim": 64,
        # A ranking term on the image scores: +0.02..0.03 test, +0.03 validation SRCC
        # on demo splits 0 and 1 against the same run without it (docs/results.md).
        "lambda_rank": 0.1,
        # One backward pass: per-term clipping's second one would take the demo past
        # its 10 minutes (+16% epoch time, measured).
        "clip_mode": "global",
    },
    # Real photographs on a 2-core CPU: ImageNet MobileNetV2 (`weights: imagenet`; pass
    # --weights PATH where it cannot download), 128 px crops, K=4, P=1, about 14 images/s
    # on 2 cores. The budget was set by CPU time, and nothing here was tuned on BIQ2021's
    # test split (docs/results.md).
    "cpu-photos": {
        "backbone": "mobilenet_v2",
        "crop_size": 128,
        "num_crops": 4,
        "num_positives": 1,
        # Two passes over the training split (9,500 BIQ2021 photos, 593 steps of 16 each):
        # about 33 minutes on 2 cores (23 of training, 2 x 2.5 validating both branches, 4
        # of test). Validation SRCC 0.769 against 0.734 for the earlier 300-step budget
        # (docs/results.md).
        # BIQ2021's photos are 512 px squares: larger photos are scored (and trained on)
        # downscaled to that long side (docs/method.md, "Working size").
        "working_long_side": 512,
        "epochs": 2,
        "batch_size": 16,
        "lr": 3e-4,
        "warmup_epochs": 0.2,
        # Both branches are validated each epoch on ~24 crops an image: 5% of train
        # (500 BIQ2021 images) keeps that to about 2.5 minutes an epoch.
        "val_fraction": 0.05,
        # The ranking term, as in cpu-demo (beyond the method; kept in the regression
        # baseline too, so the comparison is of the method's components only).
        "lambda_rank": 0.1,
        # One backward pass: per-term clipping's second pass through MobileNetV2 halves
        # the full method's speed here (8.5 against 17 images/s, measured).
        "clip_mode": "global",
    },
}
# One model for any photo: `cpu-photos` plus synthetic ranking groups (docs/method.md,
# "Synthetic ranking"): each batch of 16 photos also holds 4 more photos with 2 distorted
# copies each (28 images a step), every family of SYNTHETIC_FAMILIES.
PRESETS["cpu-general"] = {**PRESETS["cpu-photos"], "synthetic_groups": 4, "synthetic_copies": 2,
                          "lambda_synthetic": 0.25}


# Config files and `--set` / `--dataset-option` values are bounded before anything reads
# them: YAML anchors and aliases let 1 kB expand to 10^9 values ("billion laughs"), which
# safe_load builds as shared references but any repr or JSON dump expands in full.
MAX_CONFIG_BYTES = 1 << 20  # a config file's size
MAX_CONFIG_NODES = 100_000  # values (scalars, lists, mappings) a YAML text expands to, aliases counted in full
def parse_yaml(text: str, what: str) -> Any:
    """`yaml.safe_load(text)`, refused with ConfigError naming `what` when the text expands
    (aliases counted each time they appear) to more than MAX_CONFIG_NODES values or refers
    to itself; counted on the composed node graph, before any Python object is built."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, what)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise ConfigError(f"cannot parse {what}: {_one_line(error)}") from None
    finally:
        loader.dispose()


def _one_line(error: Exception) -> str:
    return shown(" ".join(str(error).split()))[1:-1] if str(error).strip() else type(error).__name__


def _check_expansion(root, what: str) -> None:
    """Count the values `root` expands to (shared alias targets once per reference), with a
    memo per node so that counting itself stays linear in the text."""
    import yaml

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode) or key in sizes:
            continue
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value))
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes.get(id(child), 1) for child in children)
            if sizes[key] > MAX_CONFIG_NODES:
                raise ConfigError(f"{what} expands to more than {MAX_CONFIG_NODES} values (YAML anchors and "
                                  "aliases counted in full); refused")
            continue
        if key in on_path:
            raise ConfigError(f"{what} refers to itself (a YAML alias inside its own anchor); refused")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _validate(c: TrainConfig) -> None:
    _check(c.backbone in BACKBONES, f"backbone {shown(c.backbone)} is not one of {', '.join(BACKBONES)}")
    _check(c.strategy in STRATEGIES, f"strategy {shown(c.strategy)} is not one of {', '.join(STRATEGIES)}")
    _check(c.branch_mode in BRANCH_MODES, f"branch_mode {shown(c.branch_mode)} is not one of {', '.join(BRANCH_MODES)}")
    _check(c.export_branch in EXPORT_BRANCHES,
           f"export_branch must be one of {', '.join(EXPORT_BRANCHES)}, got {shown(c.export_branch)}")
    _check_backbone_options(c)
    _check(0 < c.teacher_horizon <= 1, f"teacher_horizon must be in (0, 1], got {c.teacher_horizon}")
    _check(c.lambda_mse >= 0 and c.lambda_kl >= 0, "lambda_mse and lambda_kl must be >= 0")
    _check(c.head_lr_multiplier > 0, f"head_lr_multiplier must be > 0, got {c.head_lr_multiplier}")
    _check(c.intra_iou_threshold > 0, f"intra_iou_threshold must be > 0, got {c.intra_iou_threshold}")
    _check(c.cache_budget_gb > 0, f"cache_budget_gb must be > 0, got {c.cache_budget_gb}")
    _check(c.on_bad_image in ("error", "skip"), f"on_bad_image must be error or skip, got {shown(c.on_bad_image)}")
    _check(16 <= c.crop_size <= 1024, f"crop_size must be in [16, 1024], got {c.crop_size}")
    _check(len(c.scales) >= 1 and all(0 < s <= 1 for s in c.scales),
           f"scales must be in (0, 1], got {shown(list(c.scales))}")
    _check(c.num_crops >= 2, f"num_crops (K) must be >= 2 (an anchor and a non-salient crop), got {c.num_crops}")
    _check(c.num_positives >= 0, f"num_positives must be >= 0, got {c.num_positives}")
    _check(c.grid_size >= 1, f"grid_size must be >= 1, got {c.grid_size}")
    _check(c.saliency_long_side >= 8, f"saliency_long_side must be >= 8, got {c.saliency_long_side}")
    _check(c.embedding_dim >= 2 and c.head_units >= 1, "embedding_dim and head_units must be positive")
    _check(0 <= c.dropout < 1, f"dropout must be in [0, 1), got {c.dropout}")
    _check(0 <= c.momentum < 1, f"momentum must be in [0, 1), got {c.momentum}")
    _check(c.temperature >= 0.01, f"temperature must be >= 0.01, got {c.temperature}")
    _check(c.saliency_temperature > 0, f"saliency_temperature must be > 0, got {c.saliency_temperature}")
    _check(c.intra_weight >= 0, f"intra_weight must be >= 0, got {c.intra_weight}")
    _check(c.lambda_lm >= 0 and c.lambda_mut >= 0, "lambda_lm and lambda_mut must be >= 0")
    _check(c.lambda_rank >= 0, f"lambda_rank must be >= 0, got {c.lambda_rank}")
    _check(c.rank_temperature > 0, f"rank_temperature must be > 0, got {c.rank_temperature}")
    _check_synthetic(c)
    _check(c.smooth_l1_beta > 0, f"smooth_l1_beta must be > 0, got {c.smooth_l1_beta}")
    _check(c.epochs >= 1, f"epochs must be >= 1, got {c.epochs}")
    _check(c.batch_size >= 2, f"batch_size must be >= 2 (contrastive negatives need other images), got {c.batch_size}")
    _check(c.lr > 0, f"lr must be > 0, got {c.lr}")
    _check(c.weight_decay >= 0 and c.warmup_epochs >= 0 and c.clip_norm >= 0,
           "weight_decay, warmup_epochs and clip_norm must be >= 0")
    _check(c.clip_mode in CLIP_MODES, f"clip_mode must be one of {', '.join(CLIP_MODES)}, got {shown(c.clip_mode)}")
    _check(0 <= c.test_fraction < 1 and 0 <= c.val_fraction < 1, "test_fraction and val_fraction must be in [0, 1)")
    _check(c.max_pixels > 0 and c.checkpoint_every >= 0, "max_pixels must be > 0 and checkpoint_every >= 0")
    _check(c.working_long_side == 0 or c.working_long_side >= c.crop_size,
           f"working_long_side must be 0 or >= crop_size ({c.crop_size}), got {c.working_long_side}")
    _check(c.steps_per_epoch is None or c.steps_per_epoch >= 1, "steps_per_epoch must be >= 1")
    _check(bool(c.cache), "cache must be encoded, decoded, none or a file prefix")
    _check_inference_bounds(c)


def _check_inference_bounds(c: TrainConfig) -> None:
    """The settings a trained model stores in its InferenceSpec stay within the spec's hard
    bounds (`inference_spec.FIELD_BOUNDS`), so a run never ends with a model it cannot load."""
    for name in FIELD_BOUNDS:
        if name in FIELDS:
            problem = bound_problem(name, getattr(c, name))
            _check(problem is None, str(problem))


def _check_synthetic(c: TrainConfig) -> None:
    _check(c.synthetic_groups >= 0, f"synthetic_groups must be >= 0, got {c.synthetic_groups}")
    _check(1 <= c.synthetic_copies <= 5, f"synthetic_copies must be in 1..5, got {c.synthetic_copies}")
    _check(c.lambda_synthetic >= 0, f"lambda_synthetic must be >= 0, got {c.lambda_synthetic}")
    _check(c.synthetic_temperature > 0, f"synthetic_temperature must be > 0, got {c.synthetic_temperature}")
    _check(c.synthetic_siblings in SYNTHETIC_SIBLINGS,
           f"synthetic_siblings must be one of {', '.join(SYNTHETIC_SIBLINGS)}, got {c.synthetic_siblings!r}")
    _check(len(c.synthetic_families) >= 1, "synthetic_families must name at least one family")
    for name in c.synthetic_families:
        _check(name in SYNTHETIC_FAMILIES,
               f"synthetic_families: {name!r} is not one of {', '.join(SYNTHETIC_FAMILIES)}")


def _check_backbone_options(c: TrainConfig) -> None:
    if not c.backbone_options:
        return
    _check(c.backbone == "vit_s16" and c.weights == "none",
           "backbone_options set the architecture of an untrained vit_s16 only (backbone vit_s16, weights none)")
    for key, value in c.backbone_options.items():
        _check(key in VIT_ARCHITECTURE_KEYS,
               f"backbone_options key {shown(key)} is not one of {', '.join(VIT_ARCHITECTURE_KEYS)}")
        _check(isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1,
               f"backbone_options {shown(key)} must be a positive integer, got {shown(value)}")
    heads = c.backbone_options.get("num_heads", 6)
    width = c.backbone_options.get("hidden_dim", 384)
    _check(width % heads == 0, f"backbone_options hidden_dim {width} must be divisible by num_heads {heads}")


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}  # annotation strings
_EXPECTED = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
             "Mapping[str, Any]": "a mapping of keys to values", "tuple[float, ...]": "a list of numbers",
             "tuple[str, ...]": "a list of names"}


def _type_problem(key: str, value: Any) -> str | None:
    """Why `value` does not fit the field's annotated type, or None."""
    kind = _FIELD_TYPES[key]
    optional = kind.endswith(" | None")
    kind = kind.removesuffix(" | None")
    if value is None and optional or kind not in _EXPECTED:
        return None
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    fits = {"int": isinstance(value, numbers.Integral) and not isinstance(value, bool), "float": number,
            "bool": isinstance(value, bool), "str": isinstance(value, str),
            "Mapping[str, Any]": isinstance(value, Mapping),
            "tuple[float, ...]": isinstance(value, (list, tuple)) and all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value),
            "tuple[str, ...]": isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)}[kind]
    if fits:
        return None
    hint = ""
    if kind == "float" and isinstance(value, str):
        try:
            float(value)
            hint = " (YAML reads 1e-4 as text: write 1.0e-4)"
        except ValueError:
            pass
    expected = _EXPECTED[kind] + (" or null" if optional else "")
    return f"config key {key!r} expects {expected}, got {shown(value)} ({type(value).__name__}){hint}"


def from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """Build a config from a mapping, refusing unknown keys with a did-you-mean hint and
    values of the wrong type naming the key and the type it expects."""
    for key in values:
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown config key {shown(key)}{hint}")
        problem = _type_problem(key, values[key])
        if problem:
            raise ConfigError(problem)
    try:
        return TrainConfig(**values)
    except TypeError as error:  # e.g. a list where a number belongs
        raise ConfigError(f"invalid config value: {error}") from None


def preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {shown(name)}; valid presets: {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def load_file(path: str) -> dict[str, Any]:
    """Read a YAML or JSON config file into a plain dict (validated later by from_dict);
    at most MAX_CONFIG_BYTES, expanding to at most MAX_CONFIG_NODES values."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, "rb") as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is above the {MAX_CONFIG_BYTES}-byte limit of a config file")
    try:
        text = raw.decode("utf-8")
        data = json.loads(text) if path.endswith(".json") else parse_yaml(text, f"config file {path}")
    except ConfigError:
        raise
    except (ValueError, RecursionError) as error:  # JSON, UTF-8, nesting deeper than Python's stack
        raise ConfigError(f"cannot parse config file {path}: {_one_line(error)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    # A `preset:` key in the file expands to that preset, overridden by the file's keys.
    name = data.pop("preset", None)
    return {**(preset(name) if name else {}), **data}


def check_same_settings(run_dir: str, config: TrainConfig) -> None:
    """Refuse a run folder whose config.json was written with other settings.

    Resuming a killed run and reusing a finished protocol split both go through here:
    every key but `output_dir` must match. A folder without config.json passes.
    """
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as handle:
        previous = json.load(handle).get("config", {})
    wanted = json.loads(json.dumps(config.to_dict()))  # as stored: tuples become lists
    # A key the folder's config predates counts as its default value.
    defaults = json.loads(json.dumps(TrainConfig().to_dict()))
    changed = sorted(k for k in wanted if k != "output_dir" and previous.get(k, defaults[k]) != wanted[k])
    if changed:
        raise ConfigError(f"{run_dir} holds a run with different settings ({', '.join(changed)}); "
                          "use a new --output-dir, or delete that folder to start over")
