"""Iterated DPO, a method brought to rlp-harness through the ``rlp_harness.methods`` entry point."""

from rlp_iterated_dpo.method import IteratedDPO, IteratedDPOConfig, ranked_pairs

__all__ = ["IteratedDPO", "IteratedDPOConfig", "ranked_pairs"]
