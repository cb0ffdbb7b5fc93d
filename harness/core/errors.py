"""The one error type of bad input."""


class ConfigError(ValueError):
    """A configuration problem, reported as one line: where, which field, what is allowed."""
