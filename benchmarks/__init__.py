"""Benchmarks that measure the harness side by side, each runnable as ``python -m benchmarks.NAME``.

- ``ppo_vs_trl``: our PPO against TRL 1.12's experimental PPOTrainer (episodes per second, proxy-reward gain);
- ``sampling``: the harness's batched sampler against per-prompt ``generate`` calls, and a run's generation share;
- ``stage_sharing``: one run of four methods against four single-method runs (wall time);
- ``profile_run``: a run's per-stage wall time and a cProfile of where its time goes.

Every figure they print is a ratio of two things measured in the same process, interleaved and repeated, with
medians: absolute times on a shared 2-core machine move with the other jobs on it. docs/performance.md records
the figures and the commands that reproduce them.
"""
