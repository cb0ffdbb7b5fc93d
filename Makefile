# make run    -- install (CPU) and run the default comparison on the embedded tiny world
# make test   -- the test suite (the command CI runs)
PYTHON ?= python
# PyTorch's index of CPU-only wheels. PyPI's Linux wheel of torch is the CUDA build, which pulls several GB of
# NVIDIA libraries; `make setup TORCH_INDEX=` leaves the choice to pip's own configuration.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIN := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')
# pip retries an index it cannot reach 5 times, with back-off, for each package it resolves (torch and its 9
# dependencies): 1.5 min where the name does not resolve, far more where connections hang. So setup asks the index
# once, for at most this many seconds, and leaves it out if it does not answer.
TORCH_INDEX_TIMEOUT ?= 5

.PHONY: setup run test test-slow check leaderboard example-report

setup:
	@index='$(TORCH_INDEX)'; \
	if [ -n "$$index" ] && \
		! why=$$($(PYTHON) scripts/index_answers.py "$$index/torch/" $(TORCH_INDEX_TIMEOUT) 2>&1); then \
		echo "make setup: $$index did not answer ($$why); installing torch without it, so on Linux pip takes" \
			"PyPI's CUDA build (several GB) unless a CPU wheel of $(TORCH_PIN) is found elsewhere (pip's find-links or" \
			"other indexes). TORCH_INDEX=<url> names another index; TORCH_INDEX= skips this check."; \
		index=; \
	fi; \
	set -x; $(PYTHON) -m pip install '$(TORCH_PIN)' $${index:+--extra-index-url "$$index"}
	$(PYTHON) -m pip install -e '.[dev]'
	$(PYTHON) -m pip install --no-deps -r requirements-nodeps.txt

run: setup
	$(PYTHON) -m harness.run --methods ppo rlp_spg

test:
	$(PYTHON) -m pytest -q

test-slow:
	$(PYTHON) -m pytest -q -m slow

check:
	$(PYTHON) -m harness.check --preset tiny

# The stored reference of harness.check: every method, seven seeds, so that RLP - PPO's minimum detectable effect
# on farm can reach 3 points (five seeds left RLP-SPG - PPO's at 3.4, its seed-to-seed spread projected 3.0 at six)
# (--overwrite: this target's own dir, replaced).
leaderboard:
	$(PYTHON) -m harness.run --methods all --seeds 7 --out runs/leaderboard-tiny --overwrite --update-leaderboard

# The committed example report (reports/tiny/): the report of the leaderboard run above, so its provenance is the
# stored leaderboard's (tests/test_example_report.py checks the commit and config agree).
example-report: leaderboard
	rm -rf reports/tiny && mkdir -p reports/tiny
	cp -r runs/leaderboard-tiny/report.md runs/leaderboard-tiny/report-appendix.md runs/leaderboard-tiny/report.html \
		runs/leaderboard-tiny/plots reports/tiny/
