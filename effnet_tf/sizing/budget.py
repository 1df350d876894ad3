"""The budget solver: the largest compound-scaled EfficientNet that fits a device's budget.

"Given a computational budget, what is the right depth, width and resolution?" This answers it
for the formula path (``Scaling.from_phi``) and for the published table:

    fit(Budget(max_flops=1.5e9))            # exact arithmetic, no Keras, milliseconds
    fit(Budget(max_latency_ms=20), latency_fn=LatencyProbe())   # measured, see latency.py

Costs are step functions of phi (channels round to multiples of 8, repeats to integers, the
resolution to multiples of 8), but every rounding rule is non-decreasing, so with
``alpha, beta, gamma >= 1`` (the paper's constraint) params and FLOPs never decrease as phi
grows; ``tests/sizing/test_budget.py`` checks that on a fine grid. The solver bisects on a
grid of phi with spacing ``step``: the answer fits and ``answer + step`` does not, hence no
larger phi fits. Measured latency is monotone only up to noise: the answer is then the
boundary the measurements showed, and every measurement is kept in ``Fit.trace``.

No Keras here; latency comes in as a function of a ``Scaling``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

from effnet_tf.modeling.costs import IMAGENET_CLASSES, Costs, costs
from effnet_tf.modeling.scaling import ALPHA, BASE_RESOLUTION, BETA, GAMMA, PUBLISHED, Scaling

PHI_STEP = 1e-3  # spacing of the phi grid for FLOPs and parameter budgets
LATENCY_PHI_STEP = 1e-2  # coarser for measured budgets: each point builds and times a model
PHI_LIMITS = (-30.0, 30.0)  # far beyond any useful model; past them the budget is an error


@dataclasses.dataclass(frozen=True)
class Budget:
    """Upper limits a model must respect; ``None`` means no limit. All given limits apply."""

    max_flops: float | None = None  # multiply-adds of one image, as in the paper
    max_params: float | None = None  # all weights, BN statistics included
    max_latency_ms: float | None = None  # measured, batch and runtime chosen by latency_fn

    def __post_init__(self):
        limits = dataclasses.asdict(self)
        if all(v is None for v in limits.values()):
            raise ValueError("a budget needs max_flops, max_params or max_latency_ms")
        for name, value in limits.items():
            if value is not None and not (isinstance(value, (int, float)) and value > 0
                                          and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number, got {value!r}")

    def costs_fit(self, c: Costs) -> bool:
        return ((self.max_flops is None or c.flops <= self.max_flops)
                and (self.max_params is None or c.params <= self.max_params))

    def describe(self) -> str:
        parts = []
        if self.max_flops is not None:
            parts.append(f"FLOPs <= {self.max_flops / 1e9:g}B")
        if self.max_params is not None:
            parts.append(f"params <= {self.max_params / 1e6:g}M")
        if self.max_latency_ms is not None:
            parts.append(f"latency <= {self.max_latency_ms:g} ms")
        return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One evaluated scaling: its costs and, for latency budgets, its measured latency."""

    scaling: Scaling
    costs: Costs
    latency_ms: float | None = None

    def fits(self, budget: Budget) -> bool:
        """Within every limit; a latency never measured (costs over budget) does not fit."""
        return budget.costs_fit(self.costs) and (
            budget.max_latency_ms is None
            or (self.latency_ms is not None and self.latency_ms <= budget.max_latency_ms))


@dataclasses.dataclass(frozen=True)
class Fit:
    """The answer: the formula model at the largest phi, and the largest published variant.

    ``above`` is the formula model at ``phi + step``, which does not fit; ``variant`` is None
    when even B0 is over budget. ``trace`` lists every latency measurement, in order.
    """

    budget: Budget
    phi: float
    step: float
    best: Candidate
    above: Candidate
    variant: Candidate | None
    variant_above: Candidate | None
    alpha: float
    beta: float
    gamma: float
    classes: int
    base_resolution: int = BASE_RESOLUTION
    trace: tuple[Candidate, ...] = ()

    @property
    def scaling(self) -> Scaling:
        return self.best.scaling

    def latency_looks_noisy(self, slack: float = 1.25) -> bool:
        """True when latency grows across the boundary far more than FLOPs do (``phi + step``
        is nearly the same network): the measurements were disturbed, the answer is unsure."""
        if self.best.latency_ms is None or self.above.latency_ms is None:
            return False
        flops = self.above.costs.flops / self.best.costs.flops
        return self.above.latency_ms / self.best.latency_ms > slack * flops

    def train_command(self, use_variant: bool = False) -> str:
        """A ready ``effnet_tf.train`` command line for the formula answer or the variant
        (add ``--dataset=...``; the default is ImageNet)."""
        if use_variant:
            if self.variant is None:
                raise ValueError("no published variant fits this budget")
            name = self.variant.scaling.name
            args = [f"--variant={name}"]
        else:
            name = f"phi{self.phi:g}"
            args = [f"--phi={self.phi:g}"] + [
                f"--{flag}={value:g}" for flag, value, default in
                (("alpha", self.alpha, ALPHA), ("beta", self.beta, BETA),
                 ("gamma", self.gamma, GAMMA)) if value != default]
            if self.base_resolution != BASE_RESOLUTION:
                args.append(f"--image_size={self.scaling.resolution}")
        if self.classes != IMAGENET_CLASSES:
            args.append(f"--config.num_classes={self.classes}")
        return " ".join(["python -m effnet_tf.train", *args, f"--model_dir=runs/{name}"])


def architecture_key(scaling: Scaling, image_size: int | None = None) -> tuple:
    """What inference speed depends on; phis that round to the same network share it."""
    return (image_size or scaling.resolution, scaling.stem_filters, scaling.head_filters,
            tuple(scaling.blocks()))


class _Evaluator:
    """Costs and (cached, by architecture) latency of scalings, recording measurements."""

    def __init__(self, budget, latency_fn, classes):
        if budget.max_latency_ms is not None and latency_fn is None:
            raise ValueError("a max_latency_ms budget needs latency_fn "
                             "(see effnet_tf.sizing.latency)")
        self.budget, self.latency_fn, self.classes = budget, latency_fn, classes
        self.cache: dict[tuple, float] = {}
        self.trace: list[Candidate] = []

    def __call__(self, scaling: Scaling, measure: bool = True) -> Candidate:
        """``measure=False`` reports a latency only if it was already measured."""
        c = costs(scaling, classes=self.classes)
        key = architecture_key(scaling) if self.budget.max_latency_ms is not None else None
        # Only measure what the cheap limits let through: over-budget costs need no timing.
        if key is not None and key not in self.cache and measure and self.budget.costs_fit(c):
            self.cache[key] = float(self.latency_fn(scaling))
            self.trace.append(Candidate(scaling, c, self.cache[key]))
        return Candidate(scaling, c, self.cache.get(key))

    def fits(self, scaling: Scaling) -> bool:
        return self(scaling).fits(self.budget)


def largest_fitting(fits: Callable[[int], bool], lo: int, hi: int) -> int:
    """Largest integer k in [lo, hi) with ``fits(k)``, given ``fits(lo)`` and not ``fits(hi)``.

    Plain bisection: ~log2(hi - lo) calls, never at ``lo`` or ``hi`` themselves. Exact for a
    monotone predicate; otherwise it returns some k with ``fits(k) and not fits(k + 1)``.
    """
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _bracket(fits: Callable[[int], bool], start: int, unit: int, limits: tuple[int, int]):
    """(lo, hi) with ``fits(lo)`` and not ``fits(hi)``, by doubling steps from ``start``."""
    if fits(start):
        lo, width = start, unit
        while True:
            hi = min(lo + width, limits[1])
            if not fits(hi):
                return lo, hi
            if hi == limits[1]:
                return None, limits[1]
            lo, width = hi, width * 2
    hi, width = start, unit
    while True:
        lo = max(hi - width, limits[0])
        if fits(lo):
            return lo, hi
        if lo == limits[0]:
            return limits[0], None
        hi, width = lo, width * 2


def fit(
    budget: Budget,
    *,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    base_resolution: int = BASE_RESOLUTION,
    classes: int = IMAGENET_CLASSES,
    latency_fn: Callable[[Scaling], float] | None = None,
    step: float | None = None,
    variants=PUBLISHED,
) -> Fit:
    """The largest phi (on a grid of spacing ``step``) and the largest variant within budget.

    Args:
      budget: the limits; all of them must hold.
      alpha, beta, gamma: compound coefficients (>= 1), e.g. from ``effnet_tf.sizing.search``.
      base_resolution: resolution at phi = 0.
      classes: classifier outputs (they count in params and FLOPs).
      latency_fn: ``scaling -> milliseconds`` for ``max_latency_ms`` budgets, e.g.
        ``effnet_tf.sizing.latency.LatencyProbe``; called once per distinct architecture.
      step: phi resolution; default 1e-3, or 1e-2 with a latency budget.
      variants: the published variants to choose from, smallest first.

    Raises:
      ValueError: if even the smallest model (phi = -30) is over budget, or the budget is
        beyond phi = 30.
    """
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not value >= 1:
            raise ValueError(
                f"{name} must be >= 1 (the paper's constraint, which makes costs grow with "
                f"phi), got {value!r}")
    if step is None:
        step = PHI_STEP if budget.max_latency_ms is None else LATENCY_PHI_STEP
    if not 0 < step <= 0.05:
        raise ValueError(f"step must be in (0, 0.05], got {step!r}")
    evaluate = _Evaluator(budget, latency_fn, classes)

    def at(k: int) -> Scaling:
        return Scaling.from_phi(round(k * step, 10), alpha, beta, gamma, base_resolution)

    limits = (math.floor(PHI_LIMITS[0] / step), math.ceil(PHI_LIMITS[1] / step))
    start = 0
    if budget.max_flops is not None or budget.max_params is not None:
        # Solve the cheap limits first: the latency search then starts at their answer.
        cost_eval = _Evaluator(Budget(budget.max_flops, budget.max_params), None, classes)
        lo, hi = _bracket(lambda k: cost_eval.fits(at(k)), 0, round(1 / step), limits)
        _check_bracket(lo, hi, evaluate, at, budget)
        start = largest_fitting(lambda k: cost_eval.fits(at(k)), lo, hi)
    lo, hi = _bracket(lambda k: evaluate.fits(at(k)), start, round(1 / step), limits)
    _check_bracket(lo, hi, evaluate, at, budget)
    k = largest_fitting(lambda k: evaluate.fits(at(k)), lo, hi)
    variant, variant_above = _largest_variant(evaluate, variants)
    return Fit(
        budget=budget, phi=round(k * step, 10), step=step, best=evaluate(at(k)),
        above=evaluate(at(k + 1)), variant=variant, variant_above=variant_above, alpha=alpha,
        beta=beta, gamma=gamma, classes=classes, base_resolution=base_resolution,
        trace=tuple(evaluate.trace))


def _check_bracket(lo, hi, evaluate, at, budget):
    if lo is None:
        raise ValueError(f"budget {budget.describe()} is beyond phi = {PHI_LIMITS[1]:g}")
    if hi is None:
        smallest = evaluate(at(lo))
        raise ValueError(
            f"budget {budget.describe()} is below the smallest EfficientNet (phi = "
            f"{PHI_LIMITS[0]:g}: {smallest.costs.params:,} params, "
            f"{smallest.costs.flops:,} FLOPs"
            + (f", {smallest.latency_ms:.3g} ms" if smallest.latency_ms is not None else "")
            + ")")


def _largest_variant(evaluate: _Evaluator, variants):
    """The largest published variant within budget, and the next one up (bisection: they
    grow monotonically in every cost)."""
    scalings = [Scaling.variant(v) for v in variants]
    n = largest_fitting(lambda i: evaluate.fits(scalings[i]), -1, len(scalings))
    variant = evaluate(scalings[n]) if n >= 0 else None
    above = evaluate(scalings[n + 1], measure=False) if n + 1 < len(scalings) else None
    return variant, above
