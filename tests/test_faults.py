"""Faults: retried bundles, interrupted runs, debris.

Beam's runners here differ: FnApiRunner (what DirectRunner uses for batch)
does not retry a failed bundle, it fails the job; BundleBasedDirectRunner
retries a failed bundle up to 4 times, as Dataflow does. Both matter: a retry
must not double-count rows or draw noise twice, and a failed job must leave
no partial output and no debris that blocks the next run.
"""
from __future__ import annotations

import collections
import errno
import os
import signal
import subprocess
import sys
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

import transforms.release as release
from beam_pipeline.synthesize import run_synthesis_job
from dpsynth import private_stats
from dpsynth.calibration import PassNoise
from dpsynth.local import synthesize_tables
from dpsynth.noise import SeededNoise
from dpsynth.params import SynthesisConfig
from dpsynth.passes import PassKind, PassSpec
from dpsynth.validation import ValidBatch
from tests.conftest import two_class_table

DIM = 4


def _table(rows: int = 300, seed: int = 0) -> pa.Table:
    return two_class_table(rows, seed, separation=3.0, dimension=DIM)


class _CountingSource:
    """Records every stream a release draws from (module-level log: the runner may copy the source)."""

    draws: collections.Counter = collections.Counter()

    def __init__(self, inner) -> None:
        self.inner = inner

    def standard_normal(self, shape, stream=()):
        _CountingSource.draws[tuple(stream)] += 1
        return self.inner.standard_normal(shape, stream)


def test_a_retried_bundle_counts_rows_once_and_draws_noise_once(tmp_path, monkeypatch):
    failures = {"left": 1, "seen": 0}
    original = release.AccumulatePassStatsFn.process

    def flaky_process(self, batch, state):
        original(self, batch, state)  # the partial sums of this element are already held...
        failures["seen"] += 1
        if failures["seen"] == 2 and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("injected worker failure mid-bundle")  # ...and the bundle dies

    monkeypatch.setattr(release.AccumulatePassStatsFn, "process", flaky_process)
    monkeypatch.setattr(release, "noise_source", lambda seed, disabled=False: _CountingSource(SeededNoise(seed)))
    _CountingSource.draws.clear()
    table = _table()
    config = SynthesisConfig(epsilon=2.0, delta=1e-6, labels=(0, 1), max_clusters=2, noise_seed=11,
                             covariance="spherical")
    batches = [table.slice(i, 50) for i in range(0, table.num_rows, 50)]
    summary = run_synthesis_job(lambda p: p | beam.Create(batches), config, str(tmp_path / "out"),
                                PipelineOptions(["--runner=BundleBasedDirectRunner"]), dimension=DIM,
                                label_type=pa.int64())
    assert failures["left"] == 0, "the injected failure did not happen"
    # One draw per released aggregate: 3 passes x 2 classes x (count, sum), and each class's norm histogram.
    assert len(_CountingSource.draws) == 3 * 2 * 2 + 2
    assert set(_CountingSource.draws.values()) == {1}, _CountingSource.draws
    # Same seeded noise, same released mixture as the one-process reference:
    # every row was aggregated exactly once despite the retry.
    local = synthesize_tables([table], config)
    for beam_cls, local_cls in zip(summary.mixture.classes, local.mixture.classes):
        assert beam_cls.noisy_count == pytest.approx(local_cls.noisy_count, abs=1e-9)
        np.testing.assert_allclose(beam_cls.means, local_cls.means, atol=1e-9)
    assert summary.diagnostics["rows_read"] == table.num_rows


def test_accumulator_state_is_reset_at_each_bundle_start():
    # The property a retry relies on, checked directly: a bundle that failed
    # after holding partial sums leaves nothing behind for its retry.
    rng = np.random.default_rng(2)
    batches = [ValidBatch(np.zeros(5, np.int32), rng.normal(size=(5, DIM)).astype(np.float32)) for _ in range(3)]
    spec = PassSpec(0, PassKind.CLASS, {0: private_stats.WholeClass()}, PassNoise(1.0, 1.0, 1.0, 1.0))

    class State:
        next_pass = spec

    fn = release.AccumulatePassStatsFn()
    fn.start_bundle()
    fn.process(batches[0], State)  # first attempt dies after one element
    fn.start_bundle()  # the retry
    for batch in batches:
        fn.process(batch, State)
    (out,) = [value.value for value in fn.finish_bundle()]
    assert out[1].count[0] == 15
    np.testing.assert_allclose(out[1].total[0], sum(b.embeddings.astype(np.float64).sum(0) for b in batches),
                               rtol=1e-12)


def test_the_combiner_draws_no_noise(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("noise drawn inside the combine")

    monkeypatch.setattr(release, "noise_source", forbidden)
    fn = release.SumStatsFn()
    a = private_stats.Stats(np.ones(2), np.ones((2, DIM)))
    merged = fn.merge_accumulators([fn.add_input(fn.create_accumulator(), a), fn.add_input(None, None),
                                    fn.add_input(fn.create_accumulator(), a)])
    assert np.array_equal(fn.extract_output(merged).count, [2.0, 2.0])


class _Boom(beam.DoFn):
    def process(self, table):
        raise RuntimeError("injected failure")


def test_a_failed_job_leaves_no_output_and_no_blocking_debris(tmp_path):
    table = _table()
    out = tmp_path / "out"
    config = SynthesisConfig(epsilon=2.0, delta=1e-6, labels=(0, 1), max_clusters=2)
    with pytest.raises(Exception, match="injected failure"):
        run_synthesis_job(lambda p: p | beam.Create([table]) | beam.ParDo(_Boom()), config, str(out),
                          PipelineOptions(["--runner=FnApiRunner"]), dimension=DIM, label_type=pa.int64())
    assert sorted(os.listdir(tmp_path)) == []  # no DIR, no staging left behind
    summary = run_synthesis_job(lambda p: p | beam.Create([table]), config, str(out),
                                PipelineOptions(["--runner=FnApiRunner"]), dimension=DIM, label_type=pa.int64())
    assert summary.output_dir == str(out) and (out / "privacy.json").exists()


def test_a_killed_run_publishes_nothing_and_a_rerun_succeeds(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(_table(rows=600), path)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "beam_pipeline.synthesize", "--input", str(path), "--output", str(out),
               "--epsilon", "2", "--delta", "1e-6", "--labels", "0,1", "--runner=FnApiRunner"]
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not any(name.startswith("out.staging-") for name in os.listdir(tmp_path)):
            assert process.poll() is None and time.time() < deadline, "run ended before it could be killed"
            time.sleep(0.02)
        time.sleep(0.5)  # let the pipeline start working
        assert process.poll() is None
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    assert not out.exists()  # nothing published
    debris = [name for name in os.listdir(tmp_path) if name.startswith("out.staging-")]
    assert debris  # SIGKILL leaves the staging directory...
    # The re-run may use either runner: publication is the same code (beam_pipeline.outputs).
    rerun = subprocess.run([*command[:-1], "--runner=local"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]  # ...and it does not block the re-run
    assert (out / "privacy.json").exists() and (out / "report.md").exists()


def _wait_for_staging(process: subprocess.Popen, directory, prefix: str, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while not any(name.startswith(prefix) for name in os.listdir(directory)):
        assert process.poll() is None and time.time() < deadline, "run ended before it could be stopped"
        time.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_on_a_beam_run_leaves_no_staging_and_one_line(tmp_path, signum):
    path = tmp_path / "in.parquet"
    pq.write_table(_table(rows=600), path)
    command = [sys.executable, "-m", "beam_pipeline.cli", "synthesize", "--input", str(path), "--output",
               str(tmp_path / "out"), "--epsilon", "2", "--delta", "1e-6", "--labels", "0,1", "--runner=FnApiRunner"]
    scratch = tmp_path.parent / f"{tmp_path.name}-tmp"  # the run's TMPDIR: private scratch files land here
    scratch.mkdir()
    process = subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=os.getcwd(), TMPDIR=str(scratch)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_staging(process, tmp_path, "out.staging-")
        time.sleep(0.5)  # let the pipeline start working
        assert process.poll() is None
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signum, err
    assert err.strip().splitlines() == [f"dpsynth: stopped by {signal.Signals(signum).name}; no output was "
                                        "published and no staging directory is left"], err
    assert sorted(os.listdir(tmp_path)) == ["in.parquet"]
    assert os.listdir(scratch) == []  # no temporary directory left either


def test_sigterm_on_embed_leaves_no_partial_private_embeddings(tmp_path):
    rng = np.random.default_rng(0)
    vectors = pa.table({"embedding": pa.array(list(rng.standard_normal((20000, 8)).astype(np.float32)),
                                              pa.list_(pa.float32(), 8)), "label": [0, 1] * 10000})
    pq.write_table(vectors, tmp_path / "vectors.parquet", row_group_size=500)
    command = [sys.executable, "-m", "beam_pipeline.embed", "--input", str(tmp_path / "vectors.parquet"),
               "--encoder", "none", "--output", str(tmp_path / "emb.parquet"), "--rejected-output",
               str(tmp_path / "rejected"), "--batch-size", "8", "--runner=FnApiRunner"]
    process = subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=os.getcwd()), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_staging(process, tmp_path, "emb.parquet.staging-")
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode == 0:
        pytest.skip("embed finished before the signal arrived")  # the machine was faster than the wait
    assert process.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1].startswith("dpsynth: stopped by SIGTERM"), err
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["vectors.parquet"]  # no embeddings, no staging, no beam-temp


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("runner", ["local", "FnApiRunner"])
def test_a_full_disk_ends_with_one_line_and_no_debris(tmp_path, capsys, monkeypatch, runner):
    from beam_pipeline.cli import main

    pq.write_table(_table(rows=300), tmp_path / "in.parquet")
    if runner == "local":
        monkeypatch.setattr(pq.ParquetWriter, "write_table", _no_space)
    else:
        import transforms.sample

        monkeypatch.setattr(transforms.sample, "synthetic_table", _no_space)  # fails inside a worker
    code = main(["synthesize", "--input", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "out"),
                 "--epsilon", "2", "--delta", "1e-6", "--labels", "0,1", "--rejected-output",
                 str(tmp_path / "rejected"), "--runner", runner])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.strip().splitlines() == ["dpsynth: error: no space left on device; no output was published and no "
                                        "staging directory is left"], err
    assert sorted(os.listdir(tmp_path)) == ["in.parquet"]
