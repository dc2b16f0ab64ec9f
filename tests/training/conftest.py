"""The tests of each framework's own trainer run in that framework's environment only (the Makefile's TF_TESTS name
the TensorFlow ones); the shared trainer tests (test_learning, test_resume, test_cli) run in both, ``--framework``
choosing whose trainer they exercise."""

from __future__ import annotations

from cifar10_pipeline.model import frameworks

collect_ignore = [name for name, framework in (("test_torch_trainer.py", "torch"),
                                               ("test_keras_trainer.py", "tensorflow"))
                  if not frameworks.get(framework).installed()]
