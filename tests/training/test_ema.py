"""``ema`` in both trainers (``--framework``): the moving average of the weights is what the runs evaluate, resume and
save, while the live weights train as they would without it. The average's own arithmetic is tested per framework
(test_torch_trainer.py, test_keras_trainer.py)."""

from __future__ import annotations

import pytest

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME
from cifar10_pipeline.export.pipeline import convert_run
from cifar10_pipeline.training.datasets import prepare_for_training
from cifar10_pipeline.training.loop import TrainResult, train
from cifar10_pipeline.training.run import Run, cross_entropy
from tests.support.runs import TIMINGS, tiny_config, without_timings

EMA = 0.9  # a few steps' average in the tiny run's 72: close to the live weights, and still not them
LIVE = {"eval_acc_live": "eval_acc", "eval_loss_live": "eval_loss"}  # the average's run: the plain run's


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def averaged(framework, tmp_path_factory) -> TrainResult:
    """The tiny run (the ``trained`` fixture's config) with the moving average on."""
    return train(tiny_config(tmp_path_factory.mktemp("ema"), ema=EMA), framework.name)


def training_part(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMINGS and not k.startswith("eval_")}


def test_the_average_leaves_training_alone_and_the_live_weights_score_as_without_it(trained, averaged):
    assert [training_part(r) for r in averaged.metrics] == [training_part(r) for r in trained.metrics]
    assert [{k: r[k] for k in LIVE} for r in averaged.metrics] == [{k: r[v] for k, v in LIVE.items()}
                                                                  for r in trained.metrics]
    # the rows' own eval_* score another model: the average
    assert all(r["eval_loss"] != r["eval_loss_live"] for r in averaged.metrics)
    assert averaged.accuracy == averaged.metrics[-1]["eval_acc"]


def test_the_saved_model_is_the_average(averaged, framework):
    config = averaged.run.config
    data = prepare_for_training(config)
    logits = convert_run(averaged.run, framework).runner.infer({INPUT_NAME: data.eval_images})[OUTPUT_NAME]
    last = averaged.metrics[-1]
    loss = cross_entropy(logits, data.eval_labels)
    assert abs(loss - last["eval_loss"]) < 1e-4 < abs(loss - last["eval_loss_live"]), (loss, last)


def test_a_resumed_run_resumes_the_average(averaged, framework, tmp_path):
    def stop_after_second(epoch, row):
        if epoch == 2:
            raise Interrupt

    config = tiny_config(tmp_path, ema=EMA)
    with pytest.raises(Interrupt):
        train(config, framework.name, on_epoch=stop_after_second)
    resumed = train(config, framework.name, resume=Run.open(tmp_path / "runs" / "tiny"))
    # the last epoch's eval_loss is the average's: lost, or resumed with another decay, it differs
    assert without_timings(resumed.metrics) == without_timings(averaged.metrics)
