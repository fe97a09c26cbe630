# make test       -- set up (first time only) and run the tests
# make reproduce  -- set up and regenerate every result (PROFILE=cpu | paper | smoke)
# make browser-check -- the quickstart's explorer in headless Chromium, screenshot to figures/explorer.png
# make report     -- the static HTML report in site/ (from results/ and figures/; nothing is rerun)
# make site-check -- the report in headless Chromium, screenshots to figures/site_index.png and site_notebook.png
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
# the browser check's profile: cpu opens the shipped quickstart run (no training) and rewrites figures/explorer.png;
# any other profile needs BROWSER_OUT, another file than the README's image
BROWSER_PROFILE ?= cpu
BROWSER_OUT ?= figures/explorer.png
# the stamp is keyed on the pinned requirements: changing them reinstalls, nothing else does
STAMP := $(VENV)/.setup-$(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)

.PHONY: setup test reproduce lab bench clean data browser-check report site-check chromium

setup: $(STAMP) data

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name emqlib --display-name "Python (emqlib)" >/dev/null
	rm -f $(VENV)/.setup-*
	touch $@

data:
	@scripts/ensure-data.sh

# two test processes, one torch thread each (tests/conftest.py), a file's tests in one process (the notebooks'
# module fixture runs once); TEST_WORKERS=0 runs them in this process
TEST_WORKERS ?= 2

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

reproduce: setup
	$(PY) -m emqlib.harness.reproduce --profile $(PROFILE)

bench: setup
	$(PY) -m emqlib.harness.bench --profile $(PROFILE)

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir notebooks --MappingKernelManager.default_kernel_name=emqlib

# Debian's chromium and chromium-driver (installed here as root when missing); selenium drives them
chromium:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	  [ "$$(id -u)" = 0 ] || { echo "make $(MAKECMDGOALS) needs Debian's chromium and chromium-driver: run it as root or install them" >&2; exit 1; }; \
	  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }

browser-check: setup chromium
	$(PY) scripts/browser_check.py --profile $(BROWSER_PROFILE) --out $(BROWSER_OUT)

# needs the environment only (not the data set): it reads results/ and figures/ as they are
report: $(STAMP)
	$(PY) -m emqlib.harness.site --out site

site-check: report chromium
	$(PY) scripts/site_check.py

# removes caches and the run cache; never results/ or figures/
clean:
	rm -rf runs .pytest_cache
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
