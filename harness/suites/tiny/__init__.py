"""The embedded ``tiny`` world: a synthetic instruction suite with its own tokenizer and pretrained base model."""

from __future__ import annotations

from harness.suites.tiny.config import BaseModelConfig, TinyWorldConfig
from harness.suites.tiny.suite import TinySuite

__all__ = ["BaseModelConfig", "TinySuite", "TinyWorldConfig"]
