"""TensorFlow's MirroredStrategy on two logical CPU devices, and the one-device step it must equal.

TensorFlow makes logical devices only before it first starts, so this runs as its own process:
``python -m tests.support.mirrored OUT_DIR`` splits the CPU into 2 logical devices, trains the tiny config with
``replicas=2`` and with ``ShardedKerasReference`` (one device doing the replicas' work one shard after the other),
and writes both models' weights and test logits to OUT_DIR/mirrored.npz (``mirrored_*`` and ``reference_*``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPLICAS = 2
# no dropout: the replicas' dropout masks are not the reference's. A small learning rate: see test_keras_trainer.py.
# The moving average of the weights on: the saved models are the averages, kept across the replicas
CONFIG = {"dataset": "synthetic", "epochs": 1, "width": 16, "batch_size": 128, "lr": 0.02, "dropout": 0.0,
          "ema": 0.5, "max_train_samples": 768, "max_test_samples": 200}


def main(out: Path) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * REPLICAS)

    import keras

    from cifar10_pipeline.model.keras_net import BODY, PREPROCESS
    from cifar10_pipeline.training import distributed
    from cifar10_pipeline.training.config import TrainConfig
    from cifar10_pipeline.training.datasets import prepare_for_training
    from cifar10_pipeline.training.keras_trainer import KerasTrainer, augment
    from cifar10_pipeline.training.loop import fit

    class ShardedKerasReference(KerasTrainer):
        """One device doing a step as the replicas do it: each shard augmented with the whole batch's parameters
        and normalised with its own statistics, its loss summed over the batch size, its 1/N of the weight decay
        added; the shards' gradients added up; the moving statistics those of the first shard only."""

        def __init__(self, config, data):
            super().__init__(config, data)
            self.config = config
            self.images, self.labels = tf.constant(data.train_images), tf.constant(data.train_labels)

        def step(self, idx, lr):
            body, preprocess = self.model.get_layer(BODY), self.model.get_layer(PREPROCESS)
            variables = body.trainable_variables
            loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True,
                                                           label_smoothing=self.config.label_smoothing,
                                                           reduction="sum")
            seed = tf.constant([self._seed, self._step_in_epoch], tf.int64)
            self._step_in_epoch += 1
            self.optimizer.learning_rate.assign(lr)
            total, loss_sum, correct = None, 0.0, 0
            for rank in range(REPLICAS):
                part = distributed.shard(len(idx), rank, REPLICAS)
                kept = [v.numpy() for v in body.non_trainable_variables]
                x = augment(preprocess(tf.gather(self.images, idx[part])), self.config, seed, part.start, len(idx))
                labels = tf.gather(self.labels, idx[part])
                with tf.GradientTape() as tape:
                    logits = body(x, training=True)
                    loss = loss_fn(tf.one_hot(labels, logits.shape[-1]), logits) / len(idx)
                grads = tape.gradient(loss, variables)
                grads = [g + self.config.weight_decay / REPLICAS * v.value if len(v.shape) > 1 else g
                         for g, v in zip(grads, variables)]
                total = grads if total is None else [a + b for a, b in zip(total, grads)]
                loss_sum += float(loss)
                correct += int(tf.reduce_sum(tf.cast(tf.argmax(logits, axis=1) == labels, tf.int64)))
                if rank:
                    for v, value in zip(body.non_trainable_variables, kept):
                        v.assign(value)
            self.optimizer.apply(total, variables)
            self.update_average()
            return tf.constant(loss_sum), tf.constant(correct)

    runs = out / "runs"
    mirrored = fit(KerasTrainer, TrainConfig.from_dict({**CONFIG, "replicas": REPLICAS, "runs_dir": str(runs),
                                                        "run_name": "mirrored"}))
    reference = fit(ShardedKerasReference, TrainConfig.from_dict({**CONFIG, "runs_dir": str(runs),
                                                                  "run_name": "reference"}))
    test_images = prepare_for_training(TrainConfig.from_dict(CONFIG)).eval_images
    arrays = {}
    for name, result in (("mirrored", mirrored), ("reference", reference)):
        model = keras.saving.load_model(result.run.path / "model.keras")
        arrays |= {f"{name}_w{i}": w for i, w in enumerate(model.get_weights())}
        arrays[f"{name}_logits"] = np.asarray(model(test_images, training=False))
        arrays[f"{name}_device"] = np.array(result.run.info["device"])
    np.savez(out / "mirrored.npz", **arrays)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
