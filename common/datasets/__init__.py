"""Dataset registry; importing this package registers every dataset."""
from common.datasets.registry import (ArraySplits, DatasetSpec, Splits, from_arrays, get, load,
                                      names, register, resolve_source)
from common.datasets import images  # noqa: F401  (registers mnist, fashion_mnist)
from common.datasets import sequences  # noqa: F401  (registers ordered_pattern, generated)
from common.datasets import cifar  # noqa: F401  (registers cifar10)
from common.datasets import text  # noqa: F401  (registers tweets, imdb_reviews)
from common.datasets import audio  # noqa: F401  (registers spoken_digit, spoken_digit_espeak)
