"""rlp-harness: train RLHF methods behind one interface and score them the same way."""

__version__ = "0.1.0"
