"""The upsamplers' temperatures, one for both or one a level, as a request or a bundle's manifest gives them.

Torch-free, so that the command line's option parser and its help stay fast.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError

UPSAMPLER_LEVELS = (1, 0)


def upsampler_temperatures(value: Any, name: str) -> dict[int, float]:
    """A temperature for both upsamplers (0.9) or one a level ({1: 0.85, 0: 1.0}, or JSON's {"1": 0.85}) →
    {level: temperature} for the levels it names; ConfigError naming `name` unless each level is 1 or 0 and each
    temperature a positive finite number."""
    if value is None:
        return {}
    pairs = value.items() if isinstance(value, dict) else [(level, value) for level in UPSAMPLER_LEVELS]
    temperatures = {}
    for level, temperature in pairs:
        if str(level) not in map(str, UPSAMPLER_LEVELS):
            raise ConfigError(f"{name}: level {level!r} has no upsampler (levels 1 and 0 have)")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
                not 0 < temperature < math.inf:
            raise ConfigError(f"{name} must be a positive number, got {temperature!r}")
        temperatures[int(level)] = float(temperature)
    return temperatures
