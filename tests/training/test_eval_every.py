"""``eval_every`` in both trainers (``--framework``): evaluating less often trains the very same model."""

from __future__ import annotations

from cifar10_pipeline.training.loop import train
from tests.support.runs import TIMINGS, tiny_config

EVAL_KEYS = ["eval_acc", "eval_loss", "eval_split"]


def training_part(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMINGS and k not in EVAL_KEYS}


def test_evaluating_every_other_epoch_trains_the_model_of_evaluating_every_epoch(tmp_path, framework):
    def run(name: str, every: int):
        return train(tiny_config(tmp_path, epochs=3, eval_every=every, run_name=name, max_train_samples=1000),
                     framework.name)

    each, sparse = run("each", 1), run("sparse", 2)
    assert [sorted(k for k in r if k.startswith("eval_")) for r in sparse.metrics] == [[], EVAL_KEYS, EVAL_KEYS]
    # the same losses at every epoch: evaluating changed no weight and drew from no random stream
    assert [training_part(r) for r in sparse.metrics] == [training_part(r) for r in each.metrics]
    assert [r["eval_loss"] for r in sparse.metrics[1:]] == [r["eval_loss"] for r in each.metrics[1:]]
    assert sparse.accuracy == each.accuracy
