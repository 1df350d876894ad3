"""Compound scaling: the variant table, the B0 baseline, and the arithmetic of scaling.

This module is plain Python (no TensorFlow or Keras import) so that budget maths, the
summary table and the pipelines can use it cheaply. It is the one place for each of these
facts; everything else imports them from here.

Two ways to get a scaling, and they differ (Tan & Le hand-rounded the published B1..B7):
  * ``Scaling.variant("b4")``: the published table, for parity with published models and
    weights (``source == "table"``);
  * ``Scaling.from_phi(2.5)``: ``alpha**phi, beta**phi, gamma**phi`` for any real phi, for a
    custom budget (``source == "formula"``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15
BASE_RESOLUTION = 224
DEPTH_DIVISOR = 8
STEM_FILTERS = 32
HEAD_FILTERS = 1280
SE_RATIO = 0.25
# Formula-path resolutions are rounded to this multiple (the stride-32 network pads others).
RESOLUTION_MULTIPLE = 8
MIN_IMAGE_SIZE = 32
# Bounds of a trainable config (``effnet_tf.training.config.validate``), far outside every published
# model: L2 is width 4.3, depth 5.3 at 800 px, EfficientDet-D7 runs at 1536 px. Below width
# or depth 0.1 every stage is already one block of 8 channels; above the maxima one image
# alone holds tens of GB of activations. ``Scaling`` itself accepts more (the budget solver
# probes phi in [-30, 30]).
MIN_COEFFICIENT, MAX_COEFFICIENT = 0.1, 8.0  # width_coefficient and depth_coefficient
MAX_IMAGE_SIZE = 2048


def phi_bounds(alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA,
               base_resolution: int = BASE_RESOLUTION) -> tuple[float, float]:
    """The phi interval in which ``alpha**phi`` and ``beta**phi`` stay within the coefficient
    bounds and ``base_resolution * gamma**phi`` at most ``MAX_IMAGE_SIZE``."""
    low, high = -math.inf, math.inf
    for base, lo, hi in ((alpha, MIN_COEFFICIENT, MAX_COEFFICIENT),
                         (beta, MIN_COEFFICIENT, MAX_COEFFICIENT),
                         (gamma, 0.0, MAX_IMAGE_SIZE / base_resolution)):
        if base == 1:
            continue
        ends = [math.log(v) / math.log(base) if v > 0 else -math.inf * math.log(base)
                for v in (lo, hi)]
        low, high = max(low, min(ends)), min(high, max(ends))
    return low, high


class BlockSpec(NamedTuple):
    """One stage of MBConv blocks of the B0 baseline (before scaling)."""

    kernel_size: int
    strides: int
    expand_ratio: int
    filters_in: int
    filters_out: int
    repeats: int
    se_ratio: float = SE_RATIO


# The searched B0 baseline, stage by stage (paper Table 1).
B0_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(3, 1, 1, 32, 16, 1),
    BlockSpec(3, 2, 6, 16, 24, 2),
    BlockSpec(5, 2, 6, 24, 40, 2),
    BlockSpec(3, 2, 6, 40, 80, 3),
    BlockSpec(5, 1, 6, 80, 112, 3),
    BlockSpec(5, 2, 6, 112, 192, 4),
    BlockSpec(3, 1, 6, 192, 320, 1),
)

# name: (width_coefficient, depth_coefficient, resolution, dropout_rate)
VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
    "b8": (2.2, 3.6, 672, 0.5),
    "l2": (4.3, 5.3, 800, 0.5),
    # EfficientNet-Lite (tensorflow/tpu ``models/official/efficientnet/lite/
    # efficientnet_lite_builder.py``): the same table, read with the Lite rules (``Scaling.lite``)
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
    "lite3": (1.2, 1.4, 280, 0.3),
    "lite4": (1.4, 1.8, 300, 0.3),
}
PUBLISHED = ("b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7")
LITE = ("lite0", "lite1", "lite2", "lite3", "lite4")


def _check_positive(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return value


def _check_finite(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def check_image_size(image_size, name: str = "image_size") -> int:
    """Validates one spatial size; the network needs at least 32 px (five stride-2 stages)."""
    if isinstance(image_size, bool) or not isinstance(image_size, (int, float)) or (
        int(image_size) != image_size
    ):
        raise ValueError(f"{name} must be an integer >= {MIN_IMAGE_SIZE}, got {image_size!r}")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"{name} must be >= {MIN_IMAGE_SIZE} pixels, got {image_size!r}")
    return int(image_size)


def _interval(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:.2f}, {bounds[1]:.2f}]"


@dataclasses.dataclass(frozen=True)
class Scaling:
    """Width, depth and resolution of one EfficientNet, and where they came from.

    ``source`` is ``"table"`` (published variant), ``"formula"`` (``from_phi``) or
    ``"custom"`` (explicit coefficients or overrides); ``phi`` is set for the formula only.

    ``lite``: EfficientNet-Lite's rules (the official lite builder, made for int8 on mobile
    devices): no squeeze-excite ("SE is not well supported on many lite devices"), ReLU6
    instead of swish ("for easier quantization"), the stem's 32 and the head's 1280 filters
    and the first and last stages' repeats not scaled, inputs normalized as ``(x - 127) / 128``.
    """

    name: str
    width_coefficient: float
    depth_coefficient: float
    resolution: int
    dropout_rate: float
    source: str = "custom"
    phi: float | None = None
    lite: bool = False

    def __post_init__(self):
        _check_positive("width_coefficient", self.width_coefficient)
        _check_positive("depth_coefficient", self.depth_coefficient)
        check_image_size(self.resolution, "resolution")
        if not 0 <= self.dropout_rate < 1:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")

    @classmethod
    def variant(cls, name: str) -> "Scaling":
        """The published variant ``name`` (b0..b7, b8, l2, lite0..lite4) from the table."""
        key = str(name).lower().replace("efficientnet", "").replace("-", "")
        if key not in VARIANTS:
            raise ValueError(
                f"variant must be one of {', '.join(VARIANTS)}, got {name!r}"
            )
        width, depth, resolution, dropout = VARIANTS[key]
        return cls(key, width, depth, resolution, dropout, source="table", lite=key in LITE)

    @classmethod
    def from_phi(
        cls,
        phi: float,
        alpha: float = ALPHA,
        beta: float = BETA,
        gamma: float = GAMMA,
        base_resolution: int = BASE_RESOLUTION,
    ) -> "Scaling":
        """Compound scaling ``d = alpha**phi, w = beta**phi, r = gamma**phi`` for any real phi.

        The resolution is rounded to a multiple of 8; the dropout rate follows the published
        ramp (0.2 at phi 0, +0.05 per unit, at most 0.5).
        """
        phi = _check_finite("phi", phi)
        alpha = _check_positive("alpha", alpha)
        beta = _check_positive("beta", beta)
        gamma = _check_positive("gamma", gamma)
        base_resolution = check_image_size(base_resolution, "base_resolution")
        try:
            raw = base_resolution * gamma**phi
            width, depth = beta**phi, alpha**phi
        except OverflowError:
            width = depth = math.inf
        if not 0 < width < math.inf or not 0 < depth < math.inf:
            raise ValueError(f"phi={phi:g} is out of range: the coefficients overflow or vanish "
                             f"(a trainable phi is in {_interval(phi_bounds(alpha, beta, gamma))})")
        resolution = max(MIN_IMAGE_SIZE, RESOLUTION_MULTIPLE * round(raw / RESOLUTION_MULTIPLE))
        dropout = min(0.5, max(0.2, 0.2 + 0.05 * phi))
        return cls(
            f"phi{phi:g}", width, depth, resolution, dropout, source="formula", phi=phi
        )

    @classmethod
    def resolve(cls, variant: "str | Scaling | float") -> "Scaling":
        """A Scaling from a variant name, a Scaling, or a number taken as phi."""
        if isinstance(variant, Scaling):
            return variant
        if isinstance(variant, str):
            return cls.variant(variant)
        if isinstance(variant, (int, float)) and not isinstance(variant, bool):
            return cls.from_phi(variant)
        raise ValueError(
            f"variant must be a name such as 'b0', a Scaling or a phi number, got {variant!r}"
        )

    def replace(self, **overrides) -> "Scaling":
        """This scaling with some fields overridden; the result's source is ``"custom"``."""
        if not overrides:
            return self
        return dataclasses.replace(self, **overrides, source="custom", phi=None)

    # ---- the scaling rules -------------------------------------------------------------

    def round_filters(self, filters: int) -> int:
        """Channels scaled by width, rounded to a multiple of 8, never down by more than 10%."""
        scaled = filters * self.width_coefficient
        new = max(DEPTH_DIVISOR, int(scaled + DEPTH_DIVISOR / 2) // DEPTH_DIVISOR * DEPTH_DIVISOR)
        if new < 0.9 * scaled:
            new += DEPTH_DIVISOR
        return int(new)

    def round_repeats(self, repeats: int) -> int:
        return int(math.ceil(self.depth_coefficient * repeats))

    def blocks(self, base: Sequence[BlockSpec] = B0_BLOCKS) -> list["Block"]:
        """Every MBConv block of the scaled network, in order, with keras.applications names."""
        out: list[Block] = []
        for stage, spec in enumerate(base, start=1):
            # the first block reads the stem (Lite's is not scaled: 32 into lite3's block1a)
            filters_in = self.stem_filters if stage == 1 else self.round_filters(spec.filters_in)
            filters_out = self.round_filters(spec.filters_out)
            fixed = self.lite and stage in (1, len(base))  # Lite: first and last unscaled
            for j in range(spec.repeats if fixed else self.round_repeats(spec.repeats)):
                out.append(
                    Block(
                        name=f"block{stage}{chr(ord('a') + j)}_",
                        stage=stage,
                        kernel_size=spec.kernel_size,
                        strides=spec.strides if j == 0 else 1,
                        expand_ratio=spec.expand_ratio,
                        filters_in=filters_in if j == 0 else filters_out,
                        filters_out=filters_out,
                        se_ratio=0.0 if self.lite else spec.se_ratio,
                    )
                )
        return out

    @property
    def stem_filters(self) -> int:
        return STEM_FILTERS if self.lite else self.round_filters(STEM_FILTERS)

    @property
    def head_filters(self) -> int:
        return HEAD_FILTERS if self.lite else self.round_filters(HEAD_FILTERS)

    @property
    def activation(self) -> str:
        return "relu6" if self.lite else "swish"

    @property
    def normalization(self) -> str:
        """The input normalization of the official weights (``modeling.normalization``)."""
        return "lite" if self.lite else "imagenet"


class Block(NamedTuple):
    """One MBConv block after scaling."""

    name: str
    stage: int
    kernel_size: int
    strides: int
    expand_ratio: int
    filters_in: int
    filters_out: int
    se_ratio: float

    @property
    def expanded_filters(self) -> int:
        return self.filters_in * self.expand_ratio

    @property
    def has_se(self) -> bool:
        return self.se_ratio > 0

    @property
    def se_filters(self) -> int:
        return max(1, int(self.filters_in * self.se_ratio))

    @property
    def has_residual(self) -> bool:
        return self.strides == 1 and self.filters_in == self.filters_out


def survival_prob(index: int, num_blocks: int, drop_connect_rate: float) -> float:
    """Stochastic depth: block ``index`` of ``num_blocks`` (from 0) drops at ``rate * i / N``."""
    return 1.0 - drop_connect_rate * index / num_blocks
