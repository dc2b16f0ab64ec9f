"""Both trainers (``--framework``) resume an interrupted run exactly: it ends as the same run never interrupted.
Killing a trainer's process and resuming it is the reliability suite's kill_training scenario."""

from __future__ import annotations

import pytest

from cifar10_pipeline.training.loop import train
from cifar10_pipeline.training.run import Run
from tests.support.runs import tiny_config, without_timings


class Interrupt(Exception):
    pass


def test_resume_after_interrupt_matches_an_uninterrupted_run(tmp_path, framework):
    full = train(tiny_config(tmp_path, epochs=2, run_name="full", max_train_samples=1000), framework.name)

    def stop_after_first(epoch, row):
        if epoch == 1:
            raise Interrupt

    config = tiny_config(tmp_path, epochs=2, run_name="cut", max_train_samples=1000)
    with pytest.raises(Interrupt):
        train(config, framework.name, on_epoch=stop_after_first)
    cut = Run.open(tmp_path / "runs" / "cut")
    assert len(cut.metrics()) == 1 and not (cut.path / framework.model_file).exists()
    resumed = train(config, framework.name, resume=cut)
    assert without_timings(resumed.metrics) == without_timings(full.metrics)
    assert resumed.accuracy == full.accuracy
