# make run    -- install (CPU) and run the default comparison on the embedded tiny world
# make test   -- the test suite (the command CI runs)
PYTHON ?= python
# PyTorch's index of CPU-only wheels. PyPI's Linux wheel of torch is the CUDA build, which pulls several GB of
# NVIDIA libraries; `make setup TORCH_INDEX=` leaves the choice to pip's own configuration.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIN := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')

.PHONY: setup run test test-slow check leaderboard example-report

setup:
	$(PYTHON) -m pip install '$(TORCH_PIN)' $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
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

# The stored reference of harness.check: every method, three seeds (--overwrite: this target's own dir, replaced).
leaderboard:
	$(PYTHON) -m harness.run --methods all --seeds 3 --out runs/leaderboard-tiny --overwrite --update-leaderboard

# The committed example report (reports/tiny/): the report of the leaderboard run above, so its provenance is the
# stored leaderboard's (tests/test_example_report.py checks the commit and config agree).
example-report: leaderboard
	rm -rf reports/tiny && mkdir -p reports/tiny
	cp -r runs/leaderboard-tiny/report.md runs/leaderboard-tiny/report-appendix.md runs/leaderboard-tiny/report.html \
		runs/leaderboard-tiny/plots reports/tiny/
