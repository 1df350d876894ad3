"""cpu_smoke on a TFDS dataset whose one download is never answered: the URL, in
EFFNET_TF_TEST_URL, is a server of the test that accepts connections and says nothing."""
import os

import numpy as np
import tensorflow_datasets as tfds

from effnet_tf.configs import cpu_smoke


class SilentDownload(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                "label": tfds.features.ClassLabel(names=["a", "b"])}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        dl_manager.download(os.environ["EFFNET_TF_TEST_URL"])
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        yield 0, {"image": np.zeros((4, 4, 3), np.uint8), "label": 0}


def get_config():
    c = cpu_smoke.get_config()
    c.dataset = "tfds:silent_download"
    c.num_classes = None
    return c
