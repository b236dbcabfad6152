# Keras/TensorFlow tutorial examples. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2
FASHION_DIR ?= /usr/share/datasets/fashion-mnist

.PHONY: help install test test-fast run-mnist results-mnist results-table tensorboard clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed ## Create .venv and install the pinned requirements and common/

test: install ## Run the test suite (tiny subsets, no downloads)
	$(PY) -m pytest -q

run-mnist: install ## Train the MNIST CNN (tutorial's document variant, auto data source)
	$(PY) examples/mnist_cnn.py

results-mnist: install ## Re-measure the committed MNIST figures into results/mnist_cnn/
	$(PY) examples/mnist_cnn.py --data_source=bundled --output_dir=results/mnist_cnn/document-mnist-bundled
	$(PY) examples/mnist_cnn.py --variant=keras_tutorial --data_source=bundled --output_dir=results/mnist_cnn/keras_tutorial-mnist-bundled
	$(PY) examples/mnist_cnn.py --variant=mlp --data_source=bundled --output_dir=results/mnist_cnn/mlp-mnist-bundled
	@if [ -d $(FASHION_DIR) ]; then \
	  $(PY) examples/mnist_cnn.py --dataset=fashion_mnist --data_source=files --data_dir=$(FASHION_DIR) --output_dir=results/mnist_cnn/document-fashion_mnist-files; \
	else echo "skip Fashion-MNIST files: $(FASHION_DIR) missing (apt-get install dataset-fashion-mnist)"; fi
	$(MAKE) results-table

results-table: install ## Regenerate the README results table from results/*/*/results.json
	$(PY) scripts/results_table.py --readme README.md

tensorboard: install ## Serve TensorBoard over runs/
	$(VENV)/bin/tensorboard --logdir runs

clean: ## Remove runs/ (training outputs); keeps .venv and results/
	rm -rf runs
