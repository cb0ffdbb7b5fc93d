"""The core: types, errors, the chat format, atomic publishing and config validation that every layer shares.

It imports nothing else of the project and no heavy library at import time (torch, transformers), so the config
loader and ``--help`` stay fast. See docs/architecture.md for the layers above it.
"""
