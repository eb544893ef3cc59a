import numpy as np
import pyarrow as pa
import pytest

from dpsynth.errors import UserError
from dpsynth.local import synthesize_arrays
from dpsynth.params import SynthesisConfig
from tests.conftest import make_mixture_data


def test_synthetic_rows_look_like_their_class():
    X, y = make_mixture_data(num_classes=3, dimension=8, rows=6000, components=1)
    result = synthesize_arrays(X, y, SynthesisConfig(epsilon=4.0, delta=1e-5, labels=(0, 1, 2)))
    assert result.synthetic_embeddings.shape[1] == 8
    assert abs(len(result.synthetic_labels) - 6000) < 300  # noisy total count
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    for label in (0, 1, 2):
        real_mean = unit[y == label].mean(0)
        # rows carry the one released norm: their directions' mean is the class mean on the sphere
        synthetic_mean = result.synthetic_embeddings[result.synthetic_labels == label].mean(0) / result.mixture.norms.norm
        # classes are far apart; synthetic class means land near the real ones
        assert np.linalg.norm(real_mean - synthetic_mean) < 0.15
    assert result.ledger.spent_epsilon <= 4.0


def test_string_labels_come_back_as_strings_and_num_samples_is_honoured():
    X, y = make_mixture_data(rows=3000)
    names = np.array(["w", "x", "y", "z"])[y]
    config = SynthesisConfig(epsilon=2.0, delta=1e-5, labels=("w", "x", "y", "z"), num_samples=500,
                             class_balance="balanced")
    result = synthesize_arrays(X, names, config)
    assert len(result.synthetic_labels) == 500
    assert sorted(set(result.synthetic_labels.tolist())) == ["w", "x", "y", "z"]


def test_noise_free_runs_are_deterministic():
    X, y = make_mixture_data(rows=2000)
    config = SynthesisConfig(epsilon=1.0, delta=1e-5, labels=(0, 1, 2, 3), disable_noise=True, noise_seed=1)
    a = synthesize_arrays(X, y, config).mixture.to_json()
    b = synthesize_arrays(X, y, config).mixture.to_json()
    assert a == b and a["private"] is False


def test_a_class_too_small_to_fit_gets_no_rows():
    X, y = make_mixture_data(num_classes=2, rows=4000)
    y = y.copy()
    y[:3] = 7  # a class of three rows
    y[3:][y[3:] == 7] = 0
    # A fixed noise seed: with fresh noise a 3-row class clears the keep threshold now and then.
    result = synthesize_arrays(X, y, SynthesisConfig(epsilon=1.0, delta=1e-5, labels=(0, 1, 7), noise_seed=0))
    small = result.mixture.classes[2]
    # Either the class pass or the final round finds it below the noise; both say why.
    assert small.num_components == 0 and small.note
    assert 7 not in set(result.synthetic_labels.tolist())


def test_an_empty_array_gives_a_noise_only_release_with_d_from_its_shape():
    # The caller's shape (0, d) is a public fact; emptiness is not refused (that would be a release).
    import numpy as np

    from dpsynth.local import synthesize_arrays
    from dpsynth.params import SynthesisConfig

    result = synthesize_arrays(np.zeros((0, 5)), [], SynthesisConfig(epsilon=1.0, delta=1e-6, labels=(0, 1)))
    assert result.mixture.dimension == 5 and [c.label for c in result.mixture.classes] == [0, 1]
    assert result.synthetic_embeddings.shape[1] == 5
    assert result.reject_counts == {} or sum(result.reject_counts.values()) == 0


def test_validating_in_slices_releases_the_same_mixture(monkeypatch):
    # Noise off: exact sums, so slicing the input for validation cannot change a released bit.
    import dpsynth.local as local

    X, y = make_mixture_data(rows=3000)
    config = SynthesisConfig(epsilon=2.0, delta=1e-5, labels=(0, 1, 2, 3), covariance="full", disable_noise=True,
                             noise_seed=3, num_samples=0)
    whole = synthesize_arrays(X, y, config).mixture.to_json()
    monkeypatch.setattr(local, "VALIDATION_CHUNK_ROWS", 97)
    assert [len(t) for t in local.table_chunks(pa.table({"a": list(range(200))}), 97)] == [97, 97, 6]
    assert synthesize_arrays(X, y, config).mixture.to_json() == whole
