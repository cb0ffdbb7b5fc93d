"""Evaluators: simulated win rate against reference outputs, the knowledge task, and reward-model drift."""
