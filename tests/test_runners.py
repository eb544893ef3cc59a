"""The same small job, unchanged, on every runner that runs here.

DirectRunner (in_memory and multi_processing), PortableRunner against Beam's
local job service (LOOPBACK workers) and DaskRunner over a dask.distributed
LocalCluster of two worker processes (through beam_pipeline.dask_runner, which
fixes what Beam 2.77's DaskRunner gets wrong for this pipeline). With the test-only switch that turns the
noise off, every runner must release the same statistics as the local numpy
reference (same math, different summation order: compared to 1e-6 relative),
count every input row (read = valid + rejected) and write exactly the
requested number of synthetic rows. No assertion here is statistical.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

beam = pytest.importorskip("apache_beam")
synthesize = pytest.importorskip("beam_pipeline.synthesize")
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from dpsynth.local import synthesize_arrays  # noqa: E402
from dpsynth.params import SynthesisConfig  # noqa: E402

DIM = 16
LABELS = ("ant", "bee", "cat")
ROWS_PER_FILE = 700
FILES = 3
BAD_ROWS = 5  # per file: malformed rows that must be counted as rejected
NUM_SAMPLES = 900


def _dataset(seed: int = 3) -> tuple[list[pa.Table], np.ndarray, np.ndarray]:
    """FILES tables of valid rows plus BAD_ROWS malformed rows each; also the valid rows as arrays."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(LABELS), 2, DIM))
    tables, all_x, all_y = [], [], []
    for _ in range(FILES):
        y = rng.integers(0, len(LABELS), ROWS_PER_FILE)
        x = centres[y, rng.integers(0, 2, ROWS_PER_FILE)] + 0.3 * rng.standard_normal((ROWS_PER_FILE, DIM))
        x = x.astype(np.float32)
        labels = [LABELS[i] for i in y]
        embeddings = [row.tolist() for row in x]
        # Malformed: wrong dimension, a NaN, a null embedding, a null label, an unknown label.
        bad_emb = [[0.1] * (DIM - 1), [float("nan")] + [0.0] * (DIM - 1), None, [0.2] * DIM, [0.3] * DIM]
        bad_lab = ["ant", "bee", "cat", None, "dog"]
        tables.append(pa.table({
            "embedding": pa.array(embeddings + bad_emb, type=pa.list_(pa.float32())),
            "label": pa.array(labels + bad_lab, type=pa.string()),
        }))
        all_x.append(x)
        all_y.append(np.array(labels))
    return tables, np.concatenate(all_x), np.concatenate(all_y)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tables, x, y = _dataset()
    root = tmp_path_factory.mktemp("runner-input")
    for i, table in enumerate(tables):
        pq.write_table(table, root / f"part-{i}.parquet")
    return root, x, y


CONFIG = SynthesisConfig(epsilon=1.0, delta=1e-5, labels=LABELS, num_samples=NUM_SAMPLES, rounds=2,
                         max_clusters=2, noise_seed=11, disable_noise=True)


@pytest.fixture(scope="module")
def reference(data):
    _, x, y = data
    return synthesize_arrays(x, y, CONFIG).mixture.to_json()


@pytest.fixture(scope="module")
def job_endpoint():
    """Beam's local job service on a free port, stopped at the end of the module."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("localhost", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the local job service did not start")
            time.sleep(0.2)
        yield f"localhost:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def dask_address():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", memory_limit=0)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def run_job(data, tmp_path, flags: list[str]):
    root, _, _ = data

    def read_tables(pipeline):
        # element: pyarrow.Table, one Parquet row group (ROWS_PER_FILE + BAD_ROWS rows)
        return pipeline | "ReadParquet" >> beam.io.ReadFromParquetBatched(str(root / "part-*.parquet"))

    out = tmp_path / "synthetic"
    summary = synthesize.run_synthesis_job(read_tables, CONFIG, str(out), PipelineOptions(flags),
                                           dimension=DIM, label_type=pa.string())
    return out, summary


def check_outputs(out: Path, summary, reference: dict) -> None:
    released = json.loads((out / "gmm.json").read_text())
    assert released["private"] is False, "a run without noise must say it is not private"
    assert [c["label"] for c in released["classes"]] == [c["label"] for c in reference["classes"]]
    for got, want in zip(released["classes"], reference["classes"]):
        assert got["num_components"] == want["num_components"], got["label"]
        for key in ("noisy_count", "weights", "means", "variances"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-9, err_msg=f"{got['label']} {key}")
    # Every row counted: with noise off the released class counts are the valid rows.
    valid = FILES * ROWS_PER_FILE
    assert sum(c["noisy_count"] for c in released["classes"]) == pytest.approx(valid)
    counted = summary_counts(summary)
    assert counted == {"read": valid + FILES * BAD_ROWS, "valid": valid, "rejected": FILES * BAD_ROWS}
    shards = sorted(out.glob("synthetic-*-of-*.parquet"))
    assert shards, "no synthetic shards written"
    synthetic = pa.concat_tables([pq.read_table(p) for p in shards])
    assert synthetic.num_rows == NUM_SAMPLES
    assert set(synthetic.column("label").to_pylist()) <= set(LABELS)
    assert {"privacy.json", "report.md"} <= {p.name for p in out.iterdir()}


def summary_counts(summary) -> dict[str, int]:
    """The exact row counters (the data owner's diagnostics) from run_synthesis_job's summary."""
    d = summary.diagnostics
    return {"read": d["rows_read"], "valid": d["rows_valid"],
            "rejected": sum(v for k, v in d.items() if k.startswith("rejected_"))}


def test_direct_in_memory(data, reference, tmp_path):
    out, summary = run_job(data, tmp_path, ["--runner=DirectRunner", "--direct_running_mode=in_memory"])
    check_outputs(out, summary, reference)


def test_direct_multi_processing(data, reference, tmp_path):
    out, summary = run_job(data, tmp_path, ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                                            "--direct_num_workers=2"])
    check_outputs(out, summary, reference)


def test_portable_local_job_service(data, reference, tmp_path, job_endpoint):
    out, summary = run_job(data, tmp_path, ["--runner=PortableRunner", f"--job_endpoint={job_endpoint}",
                                            "--environment_type=LOOPBACK"])
    check_outputs(out, summary, reference)


def test_dask_local_cluster(data, reference, tmp_path, dask_address):
    # Beam's own DaskRunner cannot run this pipeline (see beam_pipeline/dask_runner.py).
    out, summary = run_job(data, tmp_path, ["--runner=beam_pipeline.dask_runner.DaskRunner",
                                            f"--dask_client_address={dask_address}"])
    check_outputs(out, summary, reference)


# Beam's Dask runner name, and noisy PCollections computed once.

def test_beams_dask_runner_name_maps_to_the_corrected_runner():
    from beam_pipeline.options import DASK_RUNNER, map_runner_names, split_runner

    for flags in (["--runner", "DaskRunner"], ["--runner=DaskRunner"], ["--runner=dask"],
                  ["--runner", "apache_beam.runners.dask.dask_runner.DaskRunner"]):
        mapped = map_runner_names(flags + ["--x=1"])
        assert DASK_RUNNER in " ".join(mapped) and "--x=1" in mapped, flags
    assert map_runner_names(["--runner", "DirectRunner"]) == ["--runner", "DirectRunner"]
    assert split_runner(["--runner=DaskRunner"]) == (False, [f"--runner={DASK_RUNNER}"])


def _draw(_, out_dir: str) -> float:
    """A 'noisy release': a fresh OS-random value each time it is computed, recorded on disk."""
    import os
    import uuid

    value = int.from_bytes(os.urandom(6), "little") / 2 ** 48
    with open(os.path.join(out_dir, f"draw-{uuid.uuid4().hex}"), "w") as handle:
        handle.write(repr(value))
    return value


def _record(element, value, out_dir: str, what: str) -> None:
    import os
    import uuid

    with open(os.path.join(out_dir, f"{what}-{uuid.uuid4().hex}"), "w") as handle:
        handle.write(repr(value))


def test_dask_computes_a_side_input_once_for_all_its_readers(tmp_path, dask_address):
    # A noisy value read as a side input by two steps and as the main input of a third: with Beam's
    # name for the runner, every reader sees the one value drawn, and it is drawn exactly once.
    from beam_pipeline.options import split_runner

    _, flags = split_runner(["--runner=DaskRunner", f"--dask_client_address={dask_address}"])
    out = str(tmp_path)
    pipeline = beam.Pipeline(options=PipelineOptions(flags))
    noisy = pipeline | "One" >> beam.Create([0]) | "Draw" >> beam.Map(_draw, out)
    rows = pipeline | "Rows" >> beam.Create([1, 2, 3])
    side = beam.pvalue.AsSingleton(noisy)
    _ = rows | "ReadA" >> beam.Map(_record, side, out, "a")
    _ = rows | "ReadB" >> beam.Map(lambda x, v: x + v, side) | "RecordB" >> beam.Map(_record, 0.0, out, "unused")
    _ = noisy | "Main" >> beam.Map(lambda v, out=out: _record(None, v, out, "main"))
    pipeline.run().wait_until_finish()
    draws = [p.read_text() for p in tmp_path.glob("draw-*")]
    seen = {p.read_text() for p in tmp_path.iterdir() if p.name.startswith(("a-", "main-"))}
    assert len(draws) == 1 and seen == set(draws)
    assert len(list(tmp_path.glob("a-*"))) == 3 and len(list(tmp_path.glob("main-*"))) == 1
