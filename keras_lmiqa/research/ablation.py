"""Ablations: the full model and each switch off, on the same splits, in one table.

    OUT/<variant>/split-<seed>/    a protocol per variant (resumable like `run_protocol`)
    OUT/ablation.{json,csv,md}     per variant: median and std of SRCC and PLCC over the
                                   splits and the median's difference from the full model

Every variant sets all four switches explicitly, so "full" is the full method whatever
the base config says.

Repeat i of every variant uses the same split and model seeds (`protocol.repeat_config`),
so each variant is compared with the full model run for run.
"""

from __future__ import annotations

import os

from keras_lmiqa.config import ABLATION_VARIANTS as VARIANTS
from keras_lmiqa.config import SWITCHES, TrainConfig
from keras_lmiqa.errors import ConfigError
from keras_lmiqa.research import tables
from keras_lmiqa.research.protocol import run_protocol

TABLE_METRICS = ("srcc", "plcc")


def variant_config(config: TrainConfig, variant: str) -> TrainConfig:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown ablation {variant!r}; valid: {', '.join(VARIANTS)}")
    return config.replace(**{switch: switch not in VARIANTS[variant] for switch in SWITCHES})


def run_ablation(config: TrainConfig, repeats: int, output_dir: str, variants=None, train_fn=None) -> dict:
    """Run the protocol for "full" and each variant in `variants` (default: all) on the
    same split seeds; write and return the comparison."""
    chosen = ["full"] + [v for v in (variants or VARIANTS) if v != "full"]
    for variant in chosen:
        variant_config(config, variant)  # refuse unknown names before any training
    summaries = {variant: run_protocol(variant_config(config, variant), repeats, os.path.join(output_dir, variant),
                                       train_fn=train_fn)["summary"] for variant in chosen}
    full = summaries["full"]
    rows = []
    for variant in chosen:
        row = {"variant": variant, "off": ", ".join(VARIANTS[variant]) or "-"}
        for key in TABLE_METRICS:
            stats = summaries[variant][key]
            row[f"{key} median"], row[f"{key} std"] = stats["median"], stats["std"]
            row[f"{key} delta"] = stats["median"] - full[key]["median"]
        rows.append(row)
    columns = ["variant", "off"] + [f"{key} {part}" for key in TABLE_METRICS for part in ("median", "std", "delta")]
    data = {"dataset": config.dataset, "repeats": repeats, "variants": {v: list(VARIANTS[v]) for v in chosen},
            "summaries": summaries, "rows": rows}
    title = (f"# {config.dataset}: ablations, test median and std over {repeats} split(s); "
             "delta = median minus the full model's")
    tables.write_table(output_dir, "ablation", columns, rows, data, title=title)
    return data
