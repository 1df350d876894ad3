"""One training process for the distribution and resume tests (run as a script).

    python tests/training/train_worker.py MODEL_DIR '{"strategy": "mirrored", ...}' \
        [--fixed_batch] [--one_device_first=DIR]

``--fixed_batch`` feeds every step the same 16 images, split across input pipelines by
element, so one device, mirrored replicas and several workers see the same global batch.
``--one_device_first=DIR`` first trains the same config on one device into DIR, in the same
process (one TensorFlow start-up for the two runs that are compared).
"""

import json
import os
import sys

# the repository first: its packages and the tests package (helpers)
sys.path[0:1] = [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tests.train_utils import tiny_config  # noqa: E402

from effnet_tf.training import data, trainer  # noqa: E402

GLOBAL_BATCH = 16


def fixed_train_dataset(self, input_context, batch_size):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (GLOBAL_BATCH, 64, 64, 3)).astype("float32")
    labels = np.arange(GLOBAL_BATCH, dtype="int32") % 4
    return (tf.data.Dataset.from_tensor_slices((images, labels))
            .shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
            .batch(batch_size).repeat())


def main():
    model_dir, overrides = sys.argv[1], json.loads(sys.argv[2])
    if "--fixed_batch" in sys.argv:
        data.RunData.train_dataset = fixed_train_dataset
        trainer.Trainer.evaluate = lambda self, steps=None: {}
    for arg in sys.argv[3:]:
        if arg.startswith("--one_device_first="):
            trainer.train_and_evaluate(tiny_config(**dict(overrides, strategy="cpu")),
                                       arg.split("=", 1)[1])
    result = trainer.train_and_evaluate(tiny_config(**overrides), model_dir)
    print("RESULT " + json.dumps({"step": result["step"]}))


if __name__ == "__main__":
    main()
