"""Suites: the data and annotators of a preset (splits, evaluation sets, judges)."""
