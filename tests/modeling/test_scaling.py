import math

import pytest

from effnet_tf.modeling.costs import costs
from effnet_tf.modeling.scaling import VARIANTS, Scaling, survival_prob

# Paper Table 2, multiply-adds.
PAPER_FLOPS = {"b0": 0.39e9, "b1": 0.70e9, "b2": 1.0e9, "b3": 1.8e9, "b4": 4.2e9,
               "b5": 9.9e9, "b6": 19e9, "b7": 37e9}
# keras.applications.EfficientNetB0..B7(weights=None).count_params(), Keras 3.15; it holds 7
# constants of its Normalization layer that our model does not need.
KERAS_TOTAL_PARAMS = {"b0": 5_330_571, "b1": 7_856_239, "b2": 9_177_569, "b3": 12_320_535,
                      "b4": 19_466_823, "b5": 30_562_527, "b6": 43_265_143, "b7": 66_658_687}


def test_table_holds_published_coefficients():
    assert VARIANTS["b4"] == (1.4, 1.8, 380, 0.4)
    s = Scaling.variant("B7")
    assert (s.width_coefficient, s.depth_coefficient, s.resolution, s.dropout_rate) == (
        2.0, 3.1, 600, 0.5)
    assert s.source == "table" and s.phi is None
    assert Scaling.variant("efficientnet-b2") == Scaling.variant("b2")


@pytest.mark.parametrize("filters,width,expected", [
    (32, 1.0, 32), (32, 2.0, 64), (1280, 1.1, 1408), (16, 1.1, 16), (24, 1.2, 32),
    (320, 1.4, 448), (112, 1.8, 200), (16, 0.25, 8)])
def test_round_filters(filters, width, expected):
    assert Scaling("x", width, 1.0, 224, 0.2).round_filters(filters) == expected


def test_block_list_follows_the_rounding_rules():
    b0 = Scaling.variant("b0").blocks()
    assert len(b0) == 16
    assert [b.name for b in b0[:4]] == ["block1a_", "block2a_", "block2b_", "block3a_"]
    assert (b0[1].strides, b0[1].filters_in, b0[1].filters_out) == (2, 16, 24)
    assert (b0[2].strides, b0[2].filters_in, b0[2].filters_out) == (1, 24, 24)
    assert b0[1].se_filters == 4  # SE on the block's input channels: int(16 * 0.25)
    b7 = Scaling.variant("b7").blocks()
    assert len(b7) == 55  # ceil(3.1 * n) per stage: 4+7+7+10+10+13+4
    assert sum(b.stage == 6 for b in b7) == math.ceil(3.1 * 4)


@pytest.mark.parametrize("variant", list(PAPER_FLOPS))
def test_flops_within_5_percent_of_the_paper(variant):
    ours = costs(Scaling.variant(variant)).flops
    assert abs(ours / PAPER_FLOPS[variant] - 1) < 0.05, ours


@pytest.mark.parametrize("variant", list(KERAS_TOTAL_PARAMS))
def test_param_arithmetic_equals_keras_applications(variant):
    assert costs(Scaling.variant(variant)).params == KERAS_TOTAL_PARAMS[variant] - 7


def test_phi_zero_is_b0():
    s = Scaling.from_phi(0)
    b0 = Scaling.variant("b0")
    assert (s.width_coefficient, s.depth_coefficient, s.resolution, s.dropout_rate) == (
        1.0, 1.0, 224, 0.2)
    assert s.source == "formula" and s.phi == 0
    assert costs(s) == costs(b0)


def test_flops_about_double_per_unit_of_phi():
    # alpha * beta**2 * gamma**2 = 1.92 per unit; rounding repeats up (ceil) and channels to
    # multiples of 8 makes single steps vary (4 -> 5 gives 1.65x), the trend does not.
    flops = [costs(Scaling.from_phi(phi)).flops for phi in range(9)]
    steps = [b / a for a, b in zip(flops, flops[1:])]
    assert all(1.6 <= r <= 2.3 for r in steps), steps
    assert sum(1.7 <= r <= 2.3 for r in steps) >= 7, steps
    assert 1.85 <= (flops[8] / flops[0]) ** (1 / 8) <= 2.0


def test_formula_differs_from_published_table():
    assert Scaling.from_phi(1).depth_coefficient == pytest.approx(1.2)
    assert Scaling.from_phi(1).resolution == 256  # 224 * 1.15 = 257.6, to a multiple of 8
    assert Scaling.from_phi(7).resolution != Scaling.variant("b7").resolution


def test_replace_marks_custom():
    s = Scaling.variant("b0").replace(resolution=160)
    assert (s.resolution, s.source, s.width_coefficient) == (160, "custom", 1.0)


@pytest.mark.parametrize("call,message", [
    (lambda: Scaling.variant("b9"), "variant must be one of b0"),
    (lambda: Scaling.from_phi(float("nan")), "phi must be a finite number"),
    (lambda: Scaling.from_phi(1, alpha=0), "alpha must be a finite positive number"),
    (lambda: Scaling.from_phi(1, gamma=float("inf")), "gamma must be a finite positive"),
    (lambda: Scaling("x", -1.0, 1.0, 224, 0.2), "width_coefficient must be a finite positive"),
    (lambda: Scaling("x", 1.0, 1.0, 31, 0.2), "resolution must be >= 32"),
    (lambda: Scaling.resolve(None), "variant must be a name"),
])
def test_bad_coefficients_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_survival_prob_ramps_linearly():
    assert survival_prob(0, 16, 0.2) == 1.0
    assert survival_prob(8, 16, 0.2) == pytest.approx(0.9)
    assert survival_prob(15, 16, 0.2) == pytest.approx(1 - 0.2 * 15 / 16)
