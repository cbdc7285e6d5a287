"""Export for TF Serving: `export_model` writes a versioned SavedModel (`savedmodel`),
crash-safe (`versions`). Only the CLI, benchmarks and tests import this package."""

from keras_lmiqa.export.savedmodel import LMIQAModule, build_module, export_model, warmup_image, warmup_record
from keras_lmiqa.export.versions import recover_exports

__all__ = ["LMIQAModule", "build_module", "export_model", "recover_exports", "warmup_image", "warmup_record"]
