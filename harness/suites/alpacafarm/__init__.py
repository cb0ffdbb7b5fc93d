"""The paper-scale ``alpacafarm`` suite: AlpacaFarm's data from the hub (or a local mirror) and alpaca_eval judges."""

from __future__ import annotations

from harness.suites.alpacafarm.config import AlpacaFarmConfig
from harness.suites.alpacafarm.suite import AlpacaFarmSuite

__all__ = ["AlpacaFarmConfig", "AlpacaFarmSuite"]
