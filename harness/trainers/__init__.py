"""The trainers the run context calls: SFT, the reward model, PPO, and the losses, MIB and clustering they use.

They know nothing of methods or of the run context: each takes its inputs and a config and writes a checkpoint.
"""
