"""``python -m cifar10_pipeline.training``: ``cifar10-train``."""

import sys

from cifar10_pipeline.training.cli import main

sys.exit(main())
