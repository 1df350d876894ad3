"""The budget solver: its predictions equal the built models, and its answers are maximal."""

import keras
import numpy as np
import pytest

import effnet_tf
from effnet_tf.modeling import counting
from effnet_tf.modeling.costs import costs
from effnet_tf.modeling.scaling import Scaling
from effnet_tf.sizing import budget
from effnet_tf.sizing.budget import Budget, fit


def built_costs(scaling, classes=1000):
    keras.utils.clear_session()
    model = effnet_tf.EfficientNet(scaling, classes=classes)
    return model.count_params(), counting.flops(model)


@pytest.mark.parametrize("coefficients", [(1.2, 1.1, 1.15), (1.0, 1.3, 1.05), (1.9, 1.0, 1.0)])
def test_costs_never_decrease_with_phi(coefficients):
    # Why bisection is exact: every rounding rule is monotone (checked on a 0.01 grid).
    previous = None
    for phi in np.arange(-6, 9, 0.01):
        c = costs(Scaling.from_phi(phi, *coefficients))
        if previous is not None:
            assert c.flops >= previous.flops and c.params >= previous.params, phi
        previous = c


@pytest.mark.parametrize("limits,classes", [
    (dict(max_flops=0.2e9), 1000),
    (dict(max_params=3e6), 10),
    (dict(max_flops=0.3e9, max_params=4e6), 1000),
])
def test_fit_is_within_budget_and_phi_plus_005_is_not(limits, classes):
    b = Budget(**limits)
    result = fit(b, classes=classes)
    assert result.step == 1e-3
    answer = Scaling.from_phi(result.phi)
    assert result.scaling == answer
    params, flops = built_costs(answer, classes)
    # The solver's prediction equals the built model, and the model is within budget.
    assert (params, flops) == (result.best.costs.params, result.best.costs.flops)
    assert flops <= limits.get("max_flops", np.inf) and params <= limits.get("max_params", np.inf)
    over = Scaling.from_phi(result.phi + 0.05)
    params, flops = built_costs(over, classes)
    assert flops > limits.get("max_flops", np.inf) or params > limits.get("max_params", np.inf)
    # ... and no phi on the 1e-3 grid between them fits either.
    assert not b.costs_fit(costs(Scaling.from_phi(result.phi + 1e-3), classes=classes))


def test_fit_phi_for_the_published_budgets():
    result = fit(Budget(max_flops=1.5e9))
    assert result.phi == pytest.approx(1.698)
    assert result.best.costs.flops == 1_491_392_208 and result.above.costs.flops > 1.5e9
    assert result.variant.scaling.name == "b2" and result.variant_above.scaling.name == "b3"
    assert result.train_command() == (
        "python -m effnet_tf.train --phi=1.698 --model_dir=runs/phi1.698")
    assert result.train_command(use_variant=True) == (
        "python -m effnet_tf.train --variant=b2 --model_dir=runs/b2")
    # Exactly B0's FLOPs: phi 0 (any phi > 0 adds a block to every stage: ceil(1.0001 * n)).
    b0 = costs(Scaling.variant("b0"))
    result = fit(Budget(max_flops=b0.flops))
    assert result.phi == 0 and result.variant.scaling.name == "b0"


def test_fit_with_searched_coefficients_and_classes():
    result = fit(Budget(max_params=8e6), alpha=1.3, beta=1.05, gamma=1.1, classes=10)
    assert result.scaling == Scaling.from_phi(result.phi, 1.3, 1.05, 1.1)
    assert result.best.costs == costs(result.scaling, classes=10)
    assert result.best.costs.params <= 8e6 < result.above.costs.params
    assert result.train_command().startswith(
        f"python -m effnet_tf.train --phi={result.phi:g} --alpha=1.3 --beta=1.05 --gamma=1.1 "
        "--config.num_classes=10")


def test_fit_at_another_base_resolution_prints_the_image_size():
    result = fit(Budget(max_flops=1e8), base_resolution=128)
    assert result.scaling == Scaling.from_phi(result.phi, base_resolution=128)
    assert result.scaling.resolution == 112 and result.best.costs.flops <= 1e8
    assert result.train_command() == (
        f"python -m effnet_tf.train --phi={result.phi:g} --image_size=112 "
        f"--model_dir=runs/phi{result.phi:g}")


def fake_latency(calls):
    """Deterministic 'latency': 1 ms per 10 MFLOPs; counts the calls."""
    def latency_fn(scaling):
        calls.append(scaling)
        return costs(scaling).flops / 1e7
    return latency_fn


def test_latency_budget_bisects_with_a_cache():
    calls = []
    result = fit(Budget(max_latency_ms=100), latency_fn=fake_latency(calls))
    assert result.step == 0.01
    reference = fit(Budget(max_flops=100 * 1e7), step=0.01)
    assert result.phi == reference.phi  # same answer as the equivalent FLOPs budget
    assert result.best.latency_ms <= 100 < result.above.latency_ms
    assert result.variant.scaling.name == reference.variant.scaling.name == "b2"
    # Bisection, not a sweep: a bracket by doublings, ~log2(100) halvings and ~3 for the
    # variants, and each architecture measured once.
    assert len(calls) <= 16
    keys = [budget.architecture_key(s) for s in calls]
    assert len(set(keys)) == len(keys)
    assert [c.scaling for c in result.trace] == calls


def test_cost_limits_are_solved_first_and_spare_measurements():
    calls = []
    result = fit(Budget(max_flops=0.8e9, max_latency_ms=1000), latency_fn=fake_latency(calls))
    assert result.scaling == fit(Budget(max_flops=0.8e9), step=0.01).scaling
    assert result.best.costs.flops <= 0.8e9
    # Models over the FLOPs limit are never timed.
    assert all(costs(s).flops <= 0.8e9 for s in calls) and len(calls) <= 4


def test_budget_errors():
    with pytest.raises(ValueError, match="needs max_flops"):
        Budget()
    with pytest.raises(ValueError, match="max_params must be a positive number"):
        Budget(max_params=-1)
    with pytest.raises(ValueError, match="below the smallest EfficientNet"):
        fit(Budget(max_flops=1e5))
    with pytest.raises(ValueError, match="beyond phi = 30"):
        fit(Budget(max_params=1e15))
    with pytest.raises(ValueError, match="needs latency_fn"):
        fit(Budget(max_latency_ms=10))
    with pytest.raises(ValueError, match="beta must be >= 1"):
        fit(Budget(max_flops=1e9), beta=0.9)


def test_a_latency_jump_across_the_boundary_is_flagged():
    measured = {}

    def bursty(scaling):  # the model just over the boundary was timed during a burst
        ms = costs(scaling).flops / 1e7
        measured[scaling.name] = ms * (2 if ms > 100 else 1)
        return measured[scaling.name]

    assert fit(Budget(max_latency_ms=100), latency_fn=bursty).latency_looks_noisy()
    assert not fit(Budget(max_latency_ms=100),
                   latency_fn=lambda s: costs(s).flops / 1e7).latency_looks_noisy()
