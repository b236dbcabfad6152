# Keras/TensorFlow tutorial examples. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2
export FASHION_DIR ?= /usr/share/datasets/fashion-mnist

.PHONY: help install test reproduce run-mnist run-text run-speech run-cifar run-sequence run-backprop \
	results results-mnist results-text results-speech results-cifar results-sequence results-backprop \
	results-table results-tuning results-distributed multiworker tune-mnist tune-text \
	tune-distributed bench bench-table profile-mnist tensorboard clean

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

run-text: install ## Train the text classifier (tutorial's document variant, auto data source)
	$(PY) examples/text_classifier.py

run-speech: install ## Train the LSTM spoken-digit toy (document variant, auto data source)
	$(PY) examples/speech_lstm.py

run-cifar: install ## Train the CIFAR-style CNN (needs tfds download or your CIFAR-10 files)
	$(PY) examples/cifar_cnn.py

run-sequence: install ## Train the 2-layer LSTM sequence classifier on its generated task
	$(PY) examples/sequence_lstm.py

run-backprop: install ## Train the 2-2-1 network on XOR with hand-written backprop
	$(PY) examples/backprop_scratch.py

reproduce: install ## Re-measure every figure on the data here; writes results/REPORT.md and the README table (QUICK=1: bundled data, few epochs, into runs/quick)
	$(PY) scripts/reproduce.py $(if $(QUICK),--quick,)

results: reproduce ## Same as reproduce

results-mnist: install ## Re-measure the MNIST CNN figures (bundled, Fashion-MNIST files if installed, tfds if reachable)
	$(PY) scripts/reproduce.py --only=mnist_cnn

results-text: install ## Re-measure the text-classifier figures
	$(PY) scripts/reproduce.py --only=text_classifier

results-speech: install ## Re-measure the spoken-digit figures
	$(PY) scripts/reproduce.py --only=speech_lstm

results-cifar: install ## Measure the CIFAR figures (needs tfds download or CIFAR_DIR=your CIFAR-10 copy)
	$(PY) scripts/reproduce.py --only=cifar_cnn

results-sequence: install ## Re-measure the sequence-LSTM figures
	$(PY) scripts/reproduce.py --only=sequence_lstm

results-backprop: install ## Re-measure the backprop-by-hand figures
	$(PY) scripts/reproduce.py --only=backprop_scratch

results-table: install ## Regenerate the README results table from results/*/*/results.json
	$(PY) scripts/results_table.py --readme README.md $(if $(wildcard README.zh-CN.md),--also README.zh-CN.md,)

tune-mnist: install ## Small keras-tuner random search for the MNIST CNN (minutes on 2 cores)
	$(PY) examples/mnist_cnn.py --mode=tune --max_trials=6 --tune_epochs=2 --train_size=2000 --data_source=bundled

results-tuning: install ## Re-measure the committed MNIST sweep (best trial vs the tutorial's settings)
	$(PY) examples/mnist_cnn.py --mode=tune --fresh --max_trials=8 --tune_epochs=3 --train_size=4000 --data_source=bundled --output_dir=results/tuning/mnist_cnn-document-bundled

tune-text: install ## Small keras-tuner random search for the text classifier
	$(PY) examples/text_classifier.py --mode=tune --max_trials=6 --tune_epochs=3 --data_source=bundled

WORKERS ?= 2
multiworker: install ## Tiny MNIST run across $(WORKERS) local workers (WORKERS=N); prints each worker's metrics
	$(PY) scripts/launch_multiworker.py --workers=$(WORKERS) --timeout=900 -- examples/mnist_cnn.py --data_source=bundled --train_size=1024 --test_size=500 --epochs=2 --output_dir=runs/mnist_cnn/multiworker

tune-distributed: install ## keras-tuner search shared by a chief and $(WORKERS) local workers (WORKERS=N)
	$(PY) scripts/launch_tuning.py --workers=$(WORKERS) --timeout=1800 -- examples/mnist_cnn.py --mode=tune --max_trials=4 --tune_epochs=1 --train_size=1000 --test_size=100 --data_source=bundled --output_dir=runs/mnist_cnn/tune-distributed

results-distributed: install ## Re-measure 1 vs 2 local workers into results/distributed/
	PY=$(PY) bash scripts/results_distributed.sh

bench: install ## Training-speed benchmark vs the tutorial's way; writes results/bench/bench.json and the README's speed tables (QUICK=1: under 3 minutes, into runs/bench)
	$(PY) scripts/bench.py $(if $(QUICK),--quick,--readme README.md README.zh-CN.md)

bench-table: install ## Rewrite the README's speed tables from the committed results/bench/bench.json
	$(PY) scripts/bench.py --table --readme README.md README.zh-CN.md > /dev/null

profile-mnist: install ## Where an MNIST CNN training step spends its time, by kind of op; writes results/bench/mnist_step_profile.json
	$(PY) scripts/profile_step.py

tensorboard: install ## Serve TensorBoard over runs/
	$(VENV)/bin/tensorboard --logdir runs

clean: ## Remove runs/ (training outputs); keeps .venv and results/
	rm -rf runs
