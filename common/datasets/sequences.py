"""`ordered_pattern`: a generated sequence task that needs memory of order.

Each example is a sequence of `length` tokens from a vocabulary of 10 (0-9).
The pattern tokens 1, 2, ..., k (k = `pattern_length`) each occur exactly once,
at random positions; every other position holds a distractor drawn uniformly
from the remaining 10 - k tokens. The label is 1 ("present") when the pattern
tokens occur in the order 1..2..k (the sequence contains the ordered pattern
as a subsequence), 0 ("absent") when they occur in any other order. Classes
are balanced (exactly half of each split, shuffled).

Because the positions, the distractors and the multiset of tokens are drawn
the same way for both classes, a model that sees only which tokens occur (an
average of embeddings, a bag of words) has nothing to go on: its best
accuracy is 50%. Deciding needs the order of the pattern tokens, i.e. memory
over the sequence; longer sequences and longer patterns make it harder.

The data is synthetic by design, so the `bundled` source generates it (no
file, no download), deterministically from a seed.
"""
import numpy as np

from common.datasets.registry import ArraySplits, DatasetSpec, register
from common.errors import UserError

VOCAB_SIZE = 10
CLASS_NAMES = ("absent", "present")
DEFAULT_LENGTH = 20
DEFAULT_PATTERN_LENGTH = 3
DEFAULT_SIZES = (8000, 2000)  # train (validation is carved from it), test
BUNDLED_SEED = 0  # the registry's bundled copy; examples pass --seed instead


def pattern(pattern_length=DEFAULT_PATTERN_LENGTH):
  return tuple(range(1, pattern_length + 1))


def check_task(length, pattern_length):
  if not 2 <= pattern_length <= VOCAB_SIZE - 1:
    raise UserError(f"pattern length {pattern_length} is out of range; use 2 to "
                    f"{VOCAB_SIZE - 1} (the vocabulary has {VOCAB_SIZE} tokens and at least "
                    "one must be left for distractors)")
  if length < pattern_length:
    raise UserError(f"sequence length {length} is shorter than the pattern "
                    f"({pattern_length} tokens); use a length of at least {pattern_length}")


def contains_pattern(sequence, pattern_tokens):
  """The known answer: does `sequence` contain pattern_tokens in order, as a subsequence?"""
  it = iter(int(t) for t in sequence)
  return all(any(t == p for t in it) for p in pattern_tokens)


def generate(n, *, length=DEFAULT_LENGTH, pattern_length=DEFAULT_PATTERN_LENGTH, seed=0):
  """n examples: (tokens int32 (n, length), labels int64 (n,)), half of each class."""
  check_task(length, pattern_length)
  rng = np.random.default_rng(seed)
  k = pattern_length
  distractors = np.arange(k + 1, VOCAB_SIZE + 1) % VOCAB_SIZE  # every token but 1..k
  x = rng.choice(distractors, size=(n, length)).astype(np.int32)
  labels = np.zeros(n, dtype=np.int64)
  labels[: n // 2 + (n % 2) * rng.integers(2)] = 1
  rng.shuffle(labels)
  for i in range(n):
    positions = np.sort(rng.choice(length, size=k, replace=False))
    order = np.arange(k)
    if not labels[i]:
      while np.all(order == np.arange(k)):  # any order but the pattern's own
        order = rng.permutation(k)
    x[i, positions] = order + 1
  return x, labels


def make_arrays(*, seed=BUNDLED_SEED, length=DEFAULT_LENGTH,
                pattern_length=DEFAULT_PATTERN_LENGTH, sizes=DEFAULT_SIZES):
  """Train and test splits from independent streams of one seed."""
  train_seed, test_seed = np.random.SeedSequence(seed).spawn(2)
  n_train, n_test = sizes
  return ArraySplits(
      train=generate(n_train, length=length, pattern_length=pattern_length,
                     seed=np.random.default_rng(train_seed).integers(2**63)),
      test=generate(n_test, length=length, pattern_length=pattern_length,
                    seed=np.random.default_rng(test_seed).integers(2**63)))


ORDERED_PATTERN = register(DatasetSpec(
    name="ordered_pattern", class_names=CLASS_NAMES, load_bundled=make_arrays,
    offline_help="The task is generated: use --data_source=bundled (or auto)."))
