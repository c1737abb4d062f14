# One setup path for a fresh machine: a virtual environment with torch + torchvision that work
# together on CPU, detectron2 (the user's own if importable, else the v0.6 python sources), and
# sgnet in editable mode. Re-running is a no-op while pyproject.toml and the installer are unchanged.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.sgnet-installed
# CPU-only torch from the local wheel folder breaks PyPI's torchvision; this pair works on CPU and GPU.
TORCH_SPEC ?= torch==2.13.0 torchvision==0.28.0
OUTPUT ?= output/default

.PHONY: install test demo clean-venv
install: $(STAMP)

$(STAMP): pyproject.toml tools/install_detectron2.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(UV) pip install --python $(PY) $(TORCH_SPEC)
	$(PY) tools/install_detectron2.py --installer "$(UV) pip install --python $(PY)"
	$(UV) pip install --python $(PY) -e ".[test,deploy]"
	$(PY) -c "import sgnet, torchvision.ops; print('sgnet environment ready:', sgnet.environment_summary())"
	touch $(STAMP)

# The suite on the installed detectron2, then on detectron2 main (tools/run_tests.py).
test: $(STAMP)
	$(PY) tools/run_tests.py tests

demo: $(STAMP)
	$(PY) tools/default_job.py --output $(OUTPUT)

clean-venv:
	rm -rf $(VENV)
