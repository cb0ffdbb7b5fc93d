"""The ``verifiable`` suite: instructions with programmatically checkable constraints and SmolLM2 as base model."""

from __future__ import annotations

from harness.suites.verifiable.config import VerifiableConfig
from harness.suites.verifiable.suite import VerifiableSuite

__all__ = ["VerifiableConfig", "VerifiableSuite"]
