"""The network tests of each framework run in that framework's environment only (the Makefile's TF_TESTS name the
TensorFlow ones): PyTorch and TensorFlow never share an environment."""

from __future__ import annotations

from cifar10_pipeline.model import frameworks

collect_ignore = [name for name, framework in (("test_torch_net.py", "torch"), ("test_torch_unsafe_files.py", "torch"),
                                                ("test_keras_net.py", "tensorflow"))
                  if not frameworks.get(framework).installed()]
