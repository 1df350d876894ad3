"""The test suite; its folders mirror the packages (tests/modeling for effnet_tf/modeling, ...),
the commands' tests sit here at the top, as the commands do in effnet_tf/."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")
