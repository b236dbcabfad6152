"""Dataset registry; importing this package registers every dataset."""
from common.datasets.registry import (ArraySplits, DatasetSpec, Splits, from_arrays, get, load,
                                      names, register, resolve_source)
from common.datasets import images  # noqa: F401  (registers mnist, fashion_mnist)
