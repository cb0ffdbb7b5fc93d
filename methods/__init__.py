"""RLHF methods (SFT, PPO, RLP-UML, RLP-SPG) and the maths they share.

Every method is one small class in its own file implementing :class:`methods.base.Method`.
The explicit list of methods lives in :mod:`harness.registry`; nothing registers itself on import.
"""
