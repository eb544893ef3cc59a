"""Gaussian noise for released aggregates, hardened against floating-point attacks.

Attack model. The adversary sees every released value exactly (all bits of
the float) and may know every private row but one. Two classic failures of a
naive `value + np.random.normal(0, sigma)` are guarded against:

1. Floating-point leakage (Mironov, CCS 2012). The set of floats that
   `value + noise` can take depends on `value`, so the low-order bits of a
   release can reveal the private input. We release on a grid instead: the
   aggregate is rounded to a multiple of a power-of-two granularity g, and so
   is the noise, so every release is an exact multiple of g. Because
   round(S/g) is an integer m, the release is g * round(m + Z/g): a
   post-processing of the continuous Gaussian mechanism applied to m. Rounding
   S moves it by at most g/2 per coordinate, so m's L2 sensitivity is
   Delta/g + sqrt(D) over D coordinates; the ledger accounts with that
   slightly larger sensitivity (`effective_sensitivity`). The float sampler
   only has to get the mass of each width-g interval right, and with g about
   2^-20 of the sensitivity each interval holds billions of floats.
2. Predictable generators. Private runs draw from the operating system's
   CSPRNG (os.urandom) on every call: no seed exists to leak or to repeat,
   and two workers, two bundles or two retries never share a stream. Normal
   variates come from the Box-Muller transform of 53-bit uniforms, which
   truncates the Gaussian at about 8.6 sigma: a tail of mass below 2e-17,
   far below any delta this tool accepts.

A seeded generator (`SeededNoise`) and a zero one (`NoNoise`) exist for tests
only; a run that uses either is marked not private in every output it writes.
"""
from __future__ import annotations

import math
import os
import zlib
from typing import Protocol, Sequence

import numpy as np

# Granularity of released values, in bits below the sensitivity's magnitude.
GRID_BITS = 20


def grid_for(sensitivity: float) -> float:
    """Power-of-two release granularity for a mechanism of this sensitivity."""
    return 2.0 ** (math.floor(math.log2(sensitivity)) - GRID_BITS)


def effective_sensitivity(sensitivity: float, num_coordinates: int) -> float:
    """Sensitivity after rounding the aggregate to the grid (see module docstring)."""
    return sensitivity + grid_for(sensitivity) * math.sqrt(num_coordinates)


class NoiseSource(Protocol):
    """Standard normal variates for one released aggregate."""

    def standard_normal(self, shape: tuple[int, ...], stream: Sequence[int | str]) -> np.ndarray: ...


class SecureNoise:
    """Fresh OS entropy on every call: the only source a private run uses.

    `stream` is ignored: every draw is independent of every other by
    construction, whatever worker or retry makes it.
    """

    def standard_normal(self, shape: tuple[int, ...], stream: Sequence[int | str] = ()) -> np.ndarray:
        size = int(np.prod(shape, dtype=np.int64))
        pairs = (size + 1) // 2
        bits = np.frombuffer(os.urandom(16 * pairs), dtype=np.uint64).reshape(2, pairs) >> np.uint64(11)
        u1 = (bits[0].astype(np.float64) + 1.0) * 2.0**-53  # (0, 1]: log never sees 0
        u2 = bits[1].astype(np.float64) * 2.0**-53
        radius = np.sqrt(-2.0 * np.log(u1))
        angle = 2.0 * np.pi * u2
        normals = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:size]
        return normals.reshape(shape)


class SeededNoise:
    """TEST ONLY: reproducible streams, one per (mechanism, key) pair."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def standard_normal(self, shape: tuple[int, ...], stream: Sequence[int | str] = ()) -> np.ndarray:
        spawn_key = tuple(zlib.crc32(str(part).encode()) for part in stream)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=spawn_key)))
        return rng.standard_normal(shape)


class NoNoise:
    """TEST ONLY: zeros, so Beam and the local reference can be compared exactly."""

    def standard_normal(self, shape: tuple[int, ...], stream: Sequence[int | str] = ()) -> np.ndarray:
        return np.zeros(shape)


def noise_source(noise_seed: int | None, disabled: bool = False) -> NoiseSource:
    if disabled:
        return NoNoise()
    return SecureNoise() if noise_seed is None else SeededNoise(noise_seed)


def release_gaussian(value: np.ndarray, sigma: float, grid: float, source: NoiseSource,
                     stream: Sequence[int | str] = ()) -> np.ndarray:
    """value rounded to the grid plus grid-rounded Gaussian noise of scale sigma.

    sigma == 0 is the test-only noiseless mode: the value comes back exactly.
    """
    value = np.asarray(value, dtype=np.float64)
    if sigma == 0:
        released = value.copy()
    else:
        on_grid = np.round(value / grid)
        noise = np.round(source.standard_normal(value.shape, stream) * (sigma / grid))
        released = (on_grid + noise) * grid
    observe = getattr(source, "observe", None)
    if observe is not None:  # audit instrumentation (dpsynth.auditing.RecordingNoise); never on a real run
        observe(tuple(stream), value, float(sigma), float(grid), released)
    return released
