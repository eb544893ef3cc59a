"""User-level bounding (dpsynth.privacy_units, transforms.privacy_units)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

import apache_beam as beam
from beam_pipeline.synthesize import run_synthesis_job
from dpsynth import privacy_units
from dpsynth.errors import UserError
from dpsynth.local import synthesize_tables
from dpsynth.params import SynthesisConfig

DIM = 4


def _units_table(seed: int = 0, units: int = 60, null_rows: int = 3) -> pa.Table:
    """Units owning 1..12 rows each (all of one label), plus rows with no unit id."""
    rng = np.random.default_rng(seed)
    unit_ids, labels, rows = [], [], []
    for unit in range(units):
        owned = int(rng.integers(1, 13))
        label = unit % 2
        centre = np.eye(DIM)[label] * 3
        unit_ids += [f"u{unit}"] * owned
        labels += [label] * owned
        rows += list(centre + rng.normal(size=(owned, DIM)))
    unit_ids += [None] * null_rows
    labels += [0] * null_rows
    rows += list(rng.normal(size=(null_rows, DIM)))
    order = rng.permutation(len(unit_ids))
    return pa.table({"embedding": pa.array([list(map(float, rows[i])) for i in order], pa.list_(pa.float64(), DIM)),
                     "label": pa.array([labels[i] for i in order], pa.int64()),
                     "person": pa.array([unit_ids[i] for i in order], pa.string())})


def test_every_unit_keeps_exactly_one_of_its_rows():
    table = _units_table()
    kept, rejected, counts = privacy_units.bound_units([table.slice(0, 100), table.slice(100)], "person", None)
    kept = kept[0]
    units = [u for u in table.column("person").to_pylist() if u is not None]
    assert sorted(kept.column("person").to_pylist()) == sorted(set(units))
    originals = {(r["person"], tuple(r["embedding"])) for r in table.to_pylist()}
    assert all((r["person"], tuple(r["embedding"])) in originals for r in kept.to_pylist())
    assert rejected.num_rows == 3 and set(rejected.column("reject_reason").to_pylist()) == {"missing_privacy_unit"}
    assert counts == {"unit_rows_read": table.num_rows, "unit_extra_rows_dropped": len(units) - len(set(units)),
                      "rejected_missing_privacy_unit": 3}
    # Nothing lost silently: kept + dropped + rejected = read.
    assert kept.num_rows + counts["unit_extra_rows_dropped"] + rejected.num_rows == table.num_rows


def test_the_kept_row_is_uniform_over_the_units_rows():
    # 4000 units of 4 rows each, one call: each row position is kept
    # Bin(4000, 1/4) times (mean 1000, sd 27.4). A bound of 7 sd fails with
    # probability below 4 * 2.6e-12 for a uniform choice.
    units = 4000
    table = pa.table({"person": pa.array(np.repeat(np.arange(units), 4)),
                      "position": pa.array(np.tile(np.arange(4), units))})
    kept, _, _ = privacy_units.bound_units([table], "person", None)
    hits = np.bincount(kept[0].column("position").to_numpy(), minlength=4)
    assert hits.sum() == units
    assert np.all(np.abs(hits - 1000) < 7 * np.sqrt(units * 0.25 * 0.75)), hits


def test_priorities_are_fresh_per_call_and_reproducible_only_with_a_seed():
    table = _units_table(units=5, null_rows=0)
    assert not np.array_equal(privacy_units.row_priorities(table, None), privacy_units.row_priorities(table, None))
    seeded = privacy_units.row_priorities(table, 3)
    assert np.array_equal(seeded, privacy_units.row_priorities(table.slice(0), 3))
    # Row-content keyed: a re-batched table gives every row the same priority.
    rebatched = pa.concat_tables([table.slice(4), table.slice(0, 4)])
    assert np.array_equal(np.sort(seeded), np.sort(privacy_units.row_priorities(rebatched, 3)))


def test_unit_column_must_exist_and_be_an_id():
    table = _units_table(units=3)
    with pytest.raises(UserError, match="no column 'who'"):
        privacy_units.bound_units([table], "who", None)
    with pytest.raises(UserError, match="integers or strings"):
        privacy_units.bound_units([table.append_column("f", pa.array([0.5] * table.num_rows))], "f", None)


def _config(**changes) -> SynthesisConfig:
    base = dict(epsilon=2.0, delta=1e-6, labels=(0, 1), max_clusters=1, privacy_unit_column="person",
                noise_seed=5, disable_noise=True)
    base.update(changes)
    return SynthesisConfig(**base)


def test_released_counts_are_per_unit_not_per_row():
    table = _units_table()
    result = synthesize_tables([table], _config())
    per_label_units = {label: len({u for u, l in zip(table.column("person").to_pylist(),
                                                        table.column("label").to_pylist()) if u and l == label})
                       for label in (0, 1)}
    for cls in result.mixture.classes:
        assert cls.noisy_count == pytest.approx(per_label_units[cls.label], abs=1e-6)
    assert result.reject_counts == {"missing_privacy_unit": 3}


def test_beam_and_local_agree_with_noise_off(tmp_path):
    table = _units_table(seed=1)
    config = _config()
    local = synthesize_tables([table], config)
    schema = table.schema
    batches = [table.slice(i, 50) for i in range(0, table.num_rows, 50)]
    summary = run_synthesis_job(lambda p: p | beam.Create(batches, reshuffle=False), config,
                                str(tmp_path / "out"), PipelineOptions(["--runner=FnApiRunner"]), dimension=DIM,
                                label_type=pa.int64(), input_schema=schema,
                                rejected_output=str(tmp_path / "rejected"))
    for beam_cls, local_cls in zip(summary.mixture.classes, local.mixture.classes):
        assert beam_cls.noisy_count == pytest.approx(local_cls.noisy_count, abs=1e-9)
        np.testing.assert_allclose(beam_cls.means, local_cls.means, atol=1e-9)
    units = {u for u in table.column("person").to_pylist() if u is not None}
    diagnostics = summary.diagnostics
    assert diagnostics["rows_read"] == len(units) and diagnostics["unit_rows_read"] == table.num_rows
    assert diagnostics["rejected_missing_privacy_unit"] == 3
    assert diagnostics["unit_rows_kept"] == len(units)
    rejected = pq.read_table(str(tmp_path / "rejected"))
    assert rejected.num_rows == 3 and rejected.column("person").null_count == 3
    assert diagnostics["unit_extra_rows_dropped"] == table.num_rows - 3 - len(units)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "missing_privacy_unit" not in report and str(table.num_rows) not in report  # exact: PRIVATE only


@pytest.mark.parametrize("runner", ["local", "FnApiRunner"])
def test_cli_bounds_units_on_both_runners(tmp_path, capsys, runner):
    from beam_pipeline.cli import main

    table = _units_table(seed=2)
    pq.write_table(table, tmp_path / "in.parquet")
    units = len({u for u in table.column("person").to_pylist() if u is not None})
    code = main(["synthesize", "--input", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "out"),
                 "--epsilon", "2", "--delta", "1e-6", "--labels", "0,1", "--privacy-unit-column", "person",
                 "--rejected-output", str(tmp_path / "rej"), "--diagnostics-output", str(tmp_path / "d.json"),
                 "--runner", runner])
    assert code == 0, capsys.readouterr().err
    report = (tmp_path / "out" / "report.md").read_text()
    assert "(add/remove one privacy unit: each unit kept one record)" in report
    counts = json.loads((tmp_path / "d.json").read_text())["counts"]
    assert counts["rows_valid"] == units and counts["unit_rows_read"] == table.num_rows
    assert counts["unit_extra_rows_dropped"] == table.num_rows - 3 - units
    rejected = pq.read_table(str(tmp_path / "rej"))
    assert rejected.column("reject_reason").to_pylist() == ["missing_privacy_unit"] * 3
    assert json.loads((tmp_path / "out" / "gmm.json").read_text())["private"] is True
