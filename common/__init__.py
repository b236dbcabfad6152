"""Shared pieces of the example suite: flags, datasets, pipelines, strategy, training, results."""
