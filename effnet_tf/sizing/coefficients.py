"""Compound coefficients and the constraint surface the search explores (plain Python, no Keras).

Tan & Le's step 1 fixes phi = 1 and looks for depth (alpha), width (beta) and resolution
(gamma) multipliers with ``alpha * beta**2 * gamma**2 ~= 2`` (FLOPs double) and
``alpha, beta, gamma >= 1``. This module holds that arithmetic: the candidates (``grid``,
``from_shares``), what a candidate does to a baseline (``scale_baseline``), and the baseline
as the ``scale`` command spells it (``parse_baseline``, ``train_flags``). ``search.py`` runs
the search over it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import NamedTuple

import numpy as np

from effnet_tf.modeling.scaling import ALPHA, BETA, GAMMA, MIN_IMAGE_SIZE, Scaling


class Coefficients(NamedTuple):
    """Compound coefficients: depth ``alpha``, width ``beta``, resolution ``gamma``."""

    alpha: float
    beta: float
    gamma: float

    @property
    def flops_factor(self) -> float:
        """``alpha * beta**2 * gamma**2``: how FLOPs grow per unit of phi."""
        return self.alpha * self.beta**2 * self.gamma**2

    def shares(self) -> tuple[float, float, float]:
        """Fractions of the FLOPs growth spent on depth, width and resolution."""
        total = math.log(self.flops_factor)
        return (math.log(self.alpha) / total, 2 * math.log(self.beta) / total,
                2 * math.log(self.gamma) / total)

    def flags(self) -> str:
        return f"--alpha={self.alpha:g} --beta={self.beta:g} --gamma={self.gamma:g}"


PAPER = Coefficients(ALPHA, BETA, GAMMA)


def grid(target: float = 2.0, tolerance: float = 0.05, step: float = 0.05) -> list[Coefficients]:
    """Every grid point ``>= 1`` with ``|alpha * beta**2 * gamma**2 / target - 1| <= tolerance``.

    Ordered so that any prefix spreads over the constraint surface (farthest-point order,
    from the point closest to the paper's), so a
    search cut short by ``max_trials`` is still a coarse grid rather than one corner.
    """
    if not target > 1:
        raise ValueError(f"target must be > 1 (FLOPs growth per unit of phi), got {target!r}")
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    if not 0 < step <= 1:
        raise ValueError(f"step must be in (0, 1], got {step!r}")
    high = target * (1 + tolerance)
    values = [round(1 + i * step, 4) for i in range(int((high - 1) / step + 1e-9) + 1)]
    points = [Coefficients(a, b, g) for a, b, g in itertools.product(values, repeat=3)
              if abs(a * b * b * g * g / target - 1) <= tolerance + 1e-9]  # 1.9 / 2 is within 5%
    if not points:
        raise ValueError(
            f"no grid point with step {step} is within {tolerance:.0%} of {target}: "
            f"raise tolerance or lower step")
    return _spread(points, target)


def _spread(points: list[Coefficients], target: float) -> list[Coefficients]:
    """Farthest-point order in (log alpha, 2 log beta, 2 log gamma) / log target."""
    coords = np.log([[p.alpha, p.beta**2, p.gamma**2] for p in points]) / math.log(target)
    paper = np.log([PAPER.alpha, PAPER.beta**2, PAPER.gamma**2]) / math.log(target)
    first = int(np.argmin(np.linalg.norm(coords - paper, axis=1)))
    order, distance = [first], np.linalg.norm(coords - coords[first], axis=1)
    distance[first] = -1.0
    while len(order) < len(points):
        nxt = int(np.argmax(distance))
        order.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(coords - coords[nxt], axis=1))
        distance[order] = -1.0
    return [points[i] for i in order]


def from_shares(depth_share: float, width_share_of_rest: float, target: float) -> Coefficients:
    """Coefficients on the constraint surface from two numbers in [0, 1] (every point of the
    unit square is feasible, which a Bayesian search needs): depth takes ``depth_share`` of
    ``log(target)``, width ``width_share_of_rest`` of what is left, resolution the rest."""
    total = math.log(target)
    depth = depth_share * total
    width = (1 - depth_share) * width_share_of_rest * total
    resolution = total - depth - width
    return Coefficients(round(math.exp(depth), 4), round(math.exp(width / 2), 4),
                        round(math.exp(resolution / 2), 4))


def scale_baseline(baseline: Scaling, c: Coefficients, phi: float = 1.0) -> Scaling:
    """The baseline with depth, width and resolution multiplied by ``alpha**phi`` etc.

    Resolution rounds to whole pixels, not to multiples of 8 as ``Scaling.from_phi`` does: on a
    small proxy (say 64 px) the multiple-of-8 steps would hide gamma's effect.
    """
    return dataclasses.replace(
        baseline,
        name=f"{baseline.name}_a{c.alpha:g}_b{c.beta:g}_g{c.gamma:g}",
        width_coefficient=baseline.width_coefficient * c.beta**phi,
        depth_coefficient=baseline.depth_coefficient * c.alpha**phi,
        resolution=max(MIN_IMAGE_SIZE, round(baseline.resolution * c.gamma**phi)),
        source="custom", phi=None)


def parse_baseline(text: str) -> Scaling:
    """A variant (``b0``), a phi (``phi=-1``) or ``width,depth,resolution[,dropout]``."""
    text = text.strip()
    if text.startswith("phi="):
        return Scaling.from_phi(float(text[4:]))
    if "," in text:
        parts = [float(p) for p in text.split(",")]
        if len(parts) not in (3, 4):
            raise ValueError(f"baseline must be width,depth,resolution[,dropout], got {text!r}")
        dropout = parts[3] if len(parts) == 4 else 0.2
        return Scaling(f"w{parts[0]:g}_d{parts[1]:g}_r{parts[2]:g}", parts[0], parts[1],
                       int(parts[2]), dropout)
    return Scaling.variant(text)


def train_flags(scaling: Scaling) -> str:
    """The ``effnet_tf.train`` flags that build ``scaling``: the way back from
    ``parse_baseline``, for the command lines ``tune`` prints."""
    if scaling.source == "table":
        return f"--variant={scaling.name}"
    if scaling.source == "formula":
        return f"--phi={scaling.phi:g}"
    return (f"--config.width_coefficient={scaling.width_coefficient:g} "
            f"--config.depth_coefficient={scaling.depth_coefficient:g} "
            f"--image_size={scaling.resolution}")
