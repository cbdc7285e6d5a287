"""Models: backbones by name and the LML-IQA branch."""

from keras_lmiqa.models.backbones import build_backbone
from keras_lmiqa.models.lmiqa_model import OUTPUTS, build_branch

__all__ = ["build_backbone", "build_branch", "OUTPUTS"]
