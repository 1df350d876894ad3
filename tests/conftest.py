import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from effnet_tf.modeling.scaling import Scaling  # noqa: E402


@pytest.fixture
def tiny():
    """A quarter-width, quarter-depth EfficientNet at 32 px: every block kind, built in ~1 s."""
    return Scaling("tiny", 0.25, 0.25, 32, 0.2)
