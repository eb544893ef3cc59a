"""Noise: scale, grid snapping, fresh entropy, independent streams, test-only seeds."""
from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from dpsynth.noise import (NoNoise, SecureNoise, SeededNoise, effective_sensitivity, grid_for, noise_source,
                           release_gaussian)
from dpsynth.params import SynthesisConfig

N = 400_000


def test_secure_noise_has_the_planned_scale():
    # Sample variance of N normals: sd sigma^2 sqrt(2/N) (0.22% here); the
    # mean: sd sigma/sqrt(N). Each bound is 6 sd: failure probability about
    # 2e-9 each. The KS test fails with probability 1e-7 under the null.
    sigma = 3.0
    grid = grid_for(1.0)
    released = release_gaussian(np.zeros(N), sigma, grid, SecureNoise())
    assert abs(released.mean()) < 6 * sigma / np.sqrt(N)
    assert abs(released.var() / sigma**2 - 1) < 6 * np.sqrt(2 / N)
    assert stats.kstest(released / sigma, "norm").pvalue > 1e-7
    # The truncation of Box-Muller sits at 8.6 sigma: nothing beyond it, and
    # the tails within 6 sd of their binomial expectation (p <= 2e-9 each).
    tail = np.mean(np.abs(released) > 3 * sigma)
    expected = 2 * stats.norm.sf(3)
    assert abs(tail - expected) < 6 * np.sqrt(expected / N)
    assert np.max(np.abs(released)) < 8.7 * sigma


def test_releases_are_exact_multiples_of_the_grid():
    grid = grid_for(1.0)
    values = np.array([0.0, 1.0 / 3.0, 123.456789, -7.1e-9, 2.0**-30])
    for _ in range(20):
        released = release_gaussian(values, 2.5, grid, SecureNoise())
        steps = released / grid  # a power of two: exact
        assert np.array_equal(steps, np.round(steps))


def test_low_bits_of_the_input_do_not_reach_the_release():
    # Mironov's attack reads the input from which floats `value + noise` can
    # be. Here two inputs in the same grid cell give identical releases for
    # the same noise, bit for bit: the low bits never reach the output.
    grid = grid_for(1.0)
    a = np.full(1000, 0.5)
    b = a + grid / 4  # differs only below the grid
    ra = release_gaussian(a, 1.7, grid, SeededNoise(1), ("x",))
    rb = release_gaussian(b, 1.7, grid, SeededNoise(1), ("x",))
    assert np.array_equal(ra.view(np.uint64), rb.view(np.uint64))
    # Naive float noise leaks: the same noise added to a and b gives outputs
    # that differ in their low bits, which an observer of all bits can see.
    z = np.random.default_rng(1).normal(size=1000) * 1.7
    assert not np.array_equal((a + z).view(np.uint64), (b + z).view(np.uint64))


def test_the_ledger_pays_for_rounding():
    assert effective_sensitivity(1.0, 1) == 1.0 + grid_for(1.0)
    assert effective_sensitivity(2.0, 100) == pytest.approx(2.0 + grid_for(2.0) * 10)


def test_two_draws_differ():
    source = SecureNoise()
    a, b = source.standard_normal((64,)), source.standard_normal((64,))
    assert not np.array_equal(a, b)


def test_two_processes_draw_differently():
    code = "from dpsynth.noise import SecureNoise; print(SecureNoise().standard_normal((8,)).tobytes().hex())"
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={"PYTHONPATH": "."}).stdout for _ in range(2)}
    assert len(outputs) == 2


def _draw(queue) -> None:
    queue.put(SecureNoise().standard_normal((16,)).tobytes())


def test_forked_workers_do_not_share_a_stream():
    # Workers forked from one parent inherit any in-memory generator state (a
    # numpy Generator would repeat itself in every worker); OS entropy does not.
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_draw, args=(queue,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    draws = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    draws.append(SecureNoise().standard_normal((16,)).tobytes())
    assert len(set(draws)) == 4


def test_many_draws_never_repeat_a_value():
    # Each vector comes from 1024 bits of OS entropy (8 pairs of 2 x 64): a
    # repeat among 5000 vectors has probability below 5000^2 / 2^1000.
    source = SecureNoise()
    vectors = {source.standard_normal((16,)).tobytes() for _ in range(5000)}
    assert len(vectors) == 5000


def test_seeded_streams_are_independent_per_mechanism_and_key():
    source = SeededNoise(4)
    a = source.standard_normal((32,), ("final", 0, "sum"))
    assert np.array_equal(a, SeededNoise(4).standard_normal((32,), ("final", 0, "sum")))
    others = [source.standard_normal((32,), s) for s in
              [("final", 1, "sum"), ("final", 0, "count"), ("round1", 0, "sum")]]
    others.append(SeededNoise(5).standard_normal((32,), ("final", 0, "sum")))
    assert all(not np.array_equal(a, o) for o in others)


def test_noise_source_is_secure_unless_a_test_switch_is_set():
    assert isinstance(noise_source(None), SecureNoise)
    assert isinstance(noise_source(3), SeededNoise)
    assert isinstance(noise_source(None, disabled=True), NoNoise)
    assert SynthesisConfig(epsilon=1, delta=1e-6).is_private
    assert not SynthesisConfig(epsilon=1, delta=1e-6, noise_seed=1).is_private
    assert not SynthesisConfig(epsilon=1, delta=1e-6, disable_noise=True).is_private


def _input(tmp_path) -> str:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    path = str(tmp_path / "in.parquet")
    pq.write_table(pa.table({"embedding": pa.array(X.tolist(), pa.list_(pa.float32(), 4)),
                             "label": pa.array(rng.integers(0, 2, 400))}), path)
    return path


def test_the_cli_has_no_seed_or_noise_switch(tmp_path, capsys):
    from beam_pipeline import options, synthesize
    from beam_pipeline.cli import main

    parser = options.make_parser("x", "x")
    options.add_synthesis_arguments(parser)
    flags = [flag for action in parser._actions for flag in action.option_strings]
    assert not [f for f in flags if "seed" in f or "noise" in f], flags
    # An attempt to pass one anyway reaches Beam's options, not dpsynth: the run stays private.
    code = main(["synthesize", "--input", _input(tmp_path), "--output", str(tmp_path / "out"), "--epsilon", "1",
                 "--delta", "1e-6", "--labels", "0,1", "--noise_seed=3", "--noise-seed", "3", "--runner", "local"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "gmm.json").read_text())["private"] is True
    assert json.loads((tmp_path / "out" / "privacy.json").read_text())["spent"]["epsilon"] is not None
    assert "NOT PRIVATE" not in (tmp_path / "out" / "report.md").read_text()
    assert "noise_seed" not in synthesize.run.__code__.co_names


@pytest.mark.parametrize("switch", [{"noise_seed": 3}, {"disable_noise": True}])
def test_outputs_made_with_a_test_switch_say_not_private(tmp_path, switch):
    from beam_pipeline import inputs
    from beam_pipeline.synthesize import run_local_job

    info = inputs.inspect_parquet(_input(tmp_path), "embedding", "label")
    config = SynthesisConfig(epsilon=1, delta=1e-6, labels=(0, 1), **switch)
    summary = run_local_job(info, config, str(tmp_path / "out"), embedding_column="embedding",
                            label_column="label")
    gmm = json.loads((tmp_path / "out" / "gmm.json").read_text())
    assert gmm["private"] is False and gmm["warning"].startswith("NOT PRIVATE")
    assert json.loads((tmp_path / "out" / "privacy.json").read_text())["spent"]["epsilon"] is None
    assert "**NOT PRIVATE.**" in (tmp_path / "out" / "report.md").read_text()
    assert "NOT PRIVATE" in summary.describe()
