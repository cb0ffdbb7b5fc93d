"""Test-wide settings: no hub look-ups, and one torch thread.

The test models are tiny (well under a million parameters): with more than one thread, torch spends more time
synchronising threads than computing, and on a 2-core machine shared with other work a step was measured 6-30x
slower with 2 threads than with 1.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(1)
