"""The Beam pipeline end to end, and its agreement with the local reference."""
import json
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipeline import inputs
from beam_pipeline.synthesize import run_local_job, run_synthesis_job
from dpsynth import algorithm
from dpsynth.calibration import plan_releases
from dpsynth.params import SynthesisConfig
from dpsynth.subspace import fit_public_subspace
from dpsynth.validation import ValidBatch
from transforms.release import ReleasePass

from tests.conftest import make_mixture_data

RUNNER = ["--runner=FnApiRunner"]


def _read(pattern):
    return lambda p: p | "Read" >> beam.io.ReadFromParquetBatched(pattern)


def test_release_pass_in_a_test_pipeline_emits_every_class():
    config = SynthesisConfig(epsilon=1.0, delta=1e-5, labels=("a", "b", "c"), disable_noise=True)
    plan = plan_releases(config, 2, discover_labels=False)
    batches = [ValidBatch(np.array([0, 0, 1], np.int32), np.array([[1, 0], [0.6, 0.8], [0, 1]], np.float32)),
               ValidBatch(np.array([1], np.int32), np.array([[0, 1]], np.float32))]
    with TestPipeline(options=PipelineOptions(RUNNER)) as p:
        state = p | "Init" >> beam.Create([algorithm.initial_state(config.labels, plan)])
        after = p | beam.Create(batches) | ReleasePass(state, plan, config)
        counts = after | beam.Map(lambda s: sorted((c, s.summaries[c].noisy_count) for c in s.summaries))
        # class "c" has no rows but is released (noise-free here: count 0)
        assert_that(counts, equal_to([[(0, 2.0), (1, 2.0), (2, 0.0)]]))


@pytest.mark.parametrize("rounds,covariance,reread,public", [(1, "spherical", False, False),
                                                            (2, "diagonal", True, False), (2, "full", True, False),
                                                            (1, "spherical", True, False),
                                                            (1, "lowrank", False, False), (1, "full", True, True)])
def test_beam_and_local_agree_bit_for_bit_without_noise(parquet_input, tmp_path, rounds, covariance, reread,
                                                        public):
    # Rows on the row grid make every aggregate an exact float64 sum (dpsynth.grid), so the release
    # cannot depend on the order or the batching of the rows: the local reference runs on the rows
    # shuffled and cut into other files and row groups, and Beam on the original files.
    # public: the rows are modelled in a subspace fitted on other (public) rows (dpsynth.subspace).
    subspace = None
    if public:
        subspace = fit_public_subspace(make_mixture_data(seed=9, rows=400)[0], 4, radius=1.0, clip_mode="normalize",
                                       source="test rows")
    config = SynthesisConfig(epsilon=1.0, delta=1e-5, labels=parquet_input["label_set"], rounds=rounds,
                             covariance=covariance, disable_noise=True, noise_seed=5, subspace=subspace)
    table = pq.read_table(parquet_input["pattern"].replace("part-*.parquet", ""))
    shuffled = table.take(np.random.default_rng(rounds).permutation(table.num_rows))
    other = tmp_path / "shuffled"
    other.mkdir()
    for i, (start, stop) in enumerate([(0, 7), (7, 1300), (1300, 2000)]):
        pq.write_table(shuffled.slice(start, stop - start), other / f"part-{i}.parquet", row_group_size=97)
    info = inputs.inspect_parquet(str(other / "part-*.parquet"), "embedding", "label")
    local = run_local_job(info, config, str(tmp_path / "local"), embedding_column="embedding", label_column="label")
    # reread: every pass reads and validates the input again (bounded memory) instead of a shared copy
    again = (lambda p, name: p | f"Read[{name}]" >> beam.io.ReadFromParquetBatched(parquet_input["pattern"])
             ) if reread else None
    beam_run = run_synthesis_job(_read(parquet_input["pattern"]), config, str(tmp_path / "beam"),
                                 PipelineOptions(RUNNER), dimension=info.dimension, label_type=info.label_type,
                                 reread_input=again)
    a = json.loads((tmp_path / "local" / "gmm.json").read_text())
    b = json.loads((tmp_path / "beam" / "gmm.json").read_text())
    assert a["private"] is False and b["private"] is False
    assert all(c["num_components"] > 0 for c in a["classes"])
    assert ("shape" in a["classes"][0]) == (covariance == "full")
    assert a["classes"] == b["classes"]  # every released and fitted number, in every bit
    assert (a["low_rank"] is not None) == (covariance == "lowrank")  # the pooled scatter's stage too
    assert a["low_rank"] == b["low_rank"]
    assert a["row_norms"] is not None and a["row_norms"] == b["row_norms"]  # the norm stage too
    assert (a["subspace"] is not None) == public and a["subspace"] == b["subspace"]
    assert len(a["classes"][0]["means"][0]) == (5 if public else 8)  # fitted in k + 1 = 5 coordinates
    synthetic = pq.read_table(tmp_path / "beam" / "synthetic-00000-of-00001.parquet")
    assert len(synthetic.column("embedding")[0]) == 8  # drawn back in the input's d
    assert local.rows_per_class == beam_run.rows_per_class
    assert beam_run.diagnostics["rows_read"] == beam_run.diagnostics["rows_valid"] == 2000


def test_full_job_writes_every_output_with_a_valid_ledger(parquet_input, tmp_path):
    out = tmp_path / "out"
    config = SynthesisConfig(epsilon=2.0, delta=1e-5, labels=parquet_input["label_set"])
    info = inputs.inspect_parquet(parquet_input["pattern"], "embedding", "label")
    summary = run_synthesis_job(_read(parquet_input["pattern"]), config, str(out), PipelineOptions(RUNNER),
                                dimension=info.dimension, label_type=info.label_type)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["_DPSYNTH_OUTPUT", "fig-budget.png", "fig-counts.png", "fig-projection.png", "fig-spectrum.png",
                     "gmm.json", "privacy.json", "report.md", "synthetic-00000-of-00001.parquet"]
    table = pq.read_table(out / "synthetic-00000-of-00001.parquet")
    assert table.schema.field("label").type == pa.string()
    assert table.schema.field("embedding").type == pa.list_(pa.float32())
    assert table.num_rows == sum(summary.rows_per_class) > 1500
    privacy = json.loads((out / "privacy.json").read_text())
    assert 1.8 <= privacy["spent"]["epsilon"] <= 2.0
    report = (out / "report.md").read_text()
    assert "ant" in report and "NOT PRIVATE" not in report
    # the default covariance at this small d is full: the report says how far each shape was shrunk
    assert "full covariances" in report and "| shrinkage |" in report
    assert json.loads((out / "gmm.json").read_text())["covariance"] == "full"
    assert not list(tmp_path.glob("out.staging-*"))


def test_label_discovery_in_beam(parquet_input, tmp_path):
    config = SynthesisConfig(epsilon=4.0, delta=1e-5)
    info = inputs.inspect_parquet(parquet_input["pattern"], "embedding", "label")
    summary = run_synthesis_job(_read(parquet_input["pattern"]), config, str(tmp_path / "o"), PipelineOptions(RUNNER),
                                dimension=info.dimension, label_type=info.label_type)
    # 500 rows per label against a threshold of about 40: all four are kept (failure prob < 1e-30)
    assert [c.label for c in summary.mixture.classes] == ["ant", "bee", "cat", "dog"]
    assert summary.ledger.mechanisms[0].name == "label_selection"
