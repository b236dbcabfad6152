"""The benchmark's FLOP count (the speed figures themselves come from `make bench`)."""
from common.heads import ClassifierHead
from examples import mnist_cnn
from scripts import bench


def test_document_model_flops_are_counted_from_its_layers():
  model = mnist_cnn.build_model("document", ClassifierHead(tuple("0123456789")), "mnist")
  macs = 26 * 26 * 32 * 9 + 11 * 11 * 64 * 288 + 1600 * 128 + 128 * 10
  assert bench.forward_flops(model) == 2 * macs
  assert abs(3 * bench.forward_flops(model) / 1e6 - 15.8) < 0.05  # ~15.8 MFLOP per trained sample


def test_configurations_change_one_knob_against_the_suite_default():
  configs = bench.configurations(quick=True)
  assert configs[0] is bench.REFERENCE and configs[0]["input"] == "numpy"
  for config in configs[2:]:
    changed = {k for k in config if config[k] != bench.SUITE_DEFAULT.get(k)} - {"name"}
    assert len(changed) == 1, config
