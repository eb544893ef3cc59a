"""One hostile record changes the noise of a release, never its form (no NaN, inf or lost class)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from dpsynth import finite
from dpsynth.local import synthesize_tables
from dpsynth.params import SynthesisConfig

D = 6
HOSTILE = {
    "denormal_row": [1e-310, 2e-310, -1e-310, 0.0, 0.0, 5e-324],
    "near_float_max": [1.7e308, -1.7e308, 1.7e308, 1e308, 0.0, 1.0],
    "overflowing_square": [1e200] * D,
    "negative_zeros": [-0.0] * (D - 1) + [1e-3],
}


def _table(value_type: pa.DataType, hostile: list) -> pa.Table:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 150)
    X = rng.normal(size=(len(y), D)) + 3.0 * np.eye(D)[y]
    rows = X.tolist() + [hostile] * 3
    return pa.table({"embedding": pa.array(rows, pa.list_(value_type)), "label": list(y) + [0, 0, 0]})


@pytest.mark.parametrize("covariance", ["spherical", "diagonal", "full"])
@pytest.mark.parametrize("hostile", sorted(HOSTILE))
def test_hostile_rows_leave_every_released_number_finite(hostile, covariance):
    values = HOSTILE[hostile]
    value_type = pa.float64()
    if hostile == "near_float_max":  # the float32 analogue: the largest float32s
        values, value_type = [3.4e38, -3.4e38, 3.4e38, 3e38, 0.0, 1.0], pa.float32()
    config = SynthesisConfig(epsilon=4.0, delta=1e-5, labels=(0, 1), covariance=covariance, max_clusters=1,
                             num_samples=200)
    result = synthesize_tables([_table(value_type, values)], config, dimension=D)
    assert result.reject_counts == {}  # used, like any other row
    for cls in result.mixture.classes:
        assert cls.num_components == 1
        assert np.isfinite(cls.means).all() and np.isfinite(cls.variances).all()
    assert np.isfinite(result.synthetic_embeddings).all() and len(result.synthetic_embeddings) == 200


def test_a_non_finite_mixture_is_never_published():
    config = SynthesisConfig(epsilon=4.0, delta=1e-5, labels=(0, 1), covariance="spherical", max_clusters=1)
    mixture = synthesize_tables([_table(pa.float64(), [1.0] * D)], config, dimension=D).mixture
    broken = dataclasses.replace(mixture.classes[0], means=mixture.classes[0].means * np.nan)
    mixture.classes[0] = broken
    with pytest.raises(finite.NonFiniteReleaseError, match="not finite"):
        finite.require_finite_mixture(mixture)
    with pytest.raises(finite.NonFiniteReleaseError):
        finite.require_finite_rows(np.array([[np.inf]]), 0)
