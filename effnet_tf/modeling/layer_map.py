"""What the checkpoint converters (``official_ckpt``, ``torch_layouts``) share: our block
names in network order, and picking each layer's arrays from a checkpoint's named values
with errors that name what is missing."""

from __future__ import annotations

import re

# ``block{stage}{letter}_{part}``; letters run a, b, ... z, then "{", "|", ... (chr order)
BLOCK = re.compile(r"^block(\d+)([a-z{|}~]+)_(.+)$")


def block_order(layers) -> list[str]:
    """Our block prefixes among the layer names ``layers`` (``block1a_``, ``block2a_``, ...),
    in network order: by stage, then letter."""
    found = {m.group(1, 2) for m in map(BLOCK.match, layers) if m}
    return [f"block{s}{letter}_" for s, letter in sorted(found, key=lambda b: (int(b[0]), b[1]))]


def gather(wanted: dict[str, list[str]], values: dict, optional=(), source: str = "the source",
           noun: str = "key") -> dict[str, list]:
    """``{layer: [values[name] for name in names]}`` for ``wanted`` (``{layer: names}``); a
    layer in ``optional`` is left out if ``values`` lacks one of its names. ValueError naming
    the first name missing otherwise."""
    out = {}
    for layer, names in wanted.items():
        missing = [name for name in names if name not in values]
        if missing and layer in optional:
            continue
        if missing:
            raise ValueError(f"{source} does not match the model: it has no {noun} "
                             f"{missing[0]!r} (for layer {layer!r})")
        out[layer] = [values[name] for name in names]
    return out
