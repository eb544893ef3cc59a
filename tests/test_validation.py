import numpy as np
import pyarrow as pa
import pytest

from dpsynth.errors import UserError
from dpsynth.validation import (InputSpec, check_schema, declared_dimension, embedding_matrix, label_counts,
                                read_embedding_files, resolve_dimension, validate_table, validation_counts)

SPEC = InputSpec("embedding", "label", 3, ("a", "b"), 1.0, "normalize")


def test_each_malformed_row_gets_its_reason_and_valid_rows_are_bounded():
    table = pa.table({
        "embedding": pa.array([[3.0, 4.0, 0.0], None, [1.0, 2.0], [np.nan, 1.0, 1.0], [0.0, 0.0, 0.0],
                               [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0], [np.inf, 0, 0]],
                              pa.list_(pa.float64())),
        "label": ["a", "a", "a", "a", "a", None, "zebra", "b", "b"],
    })
    result = validate_table(table, SPEC)
    assert result.reason_counts == {"missing_embedding": 1, "wrong_dimension": 1, "non_finite": 2,
                                    "zero_norm": 1, "missing_label": 1, "unknown_label": 1}
    assert result.valid.class_ids.tolist() == [0, 1]
    np.testing.assert_allclose(result.valid.embeddings, [[0.6, 0.8, 0.0], [0.0, 0.0, 1.0]], atol=SPEC.grid)
    assert result.rejected.num_rows == 7
    assert sorted(result.rejected.column("reject_reason").to_pylist()) == sorted(
        ["missing_embedding", "wrong_dimension", "non_finite", "non_finite", "zero_norm", "missing_label",
         "unknown_label"])
    assert len(result.valid) + result.rejected.num_rows == table.num_rows  # nothing silently dropped


def test_integer_labels_of_another_width_still_match():
    spec = InputSpec("embedding", "label", 2, (1, 2), 1.0, "clip")
    table = pa.table({"embedding": pa.array([[0.1, 0.1], [0.2, 0.2]], pa.list_(pa.float32())),
                      "label": pa.array([2, 7], pa.int8())})
    result = validate_table(table, spec)
    assert result.valid.class_ids.tolist() == [1] and result.reason_counts == {"unknown_label": 1}


def test_schema_errors_are_one_line_user_errors():
    schema = pa.schema([("embedding", pa.list_(pa.string())), ("label", pa.string())])
    with pytest.raises(UserError, match="list of numbers"):
        check_schema(schema, "embedding", "label")
    with pytest.raises(UserError, match=r"no column 'vec' \(embedding_column\)"):
        check_schema(schema, "vec", "label")


def test_dimension_from_public_facts_only():
    fixed = pa.table({"e": pa.FixedSizeListArray.from_arrays(pa.array([1.0] * 6), 3)})
    assert declared_dimension(fixed.schema, "e") == 3
    # a variable-length list: its rows are private, so no d, whatever the first row holds
    ragged = pa.table({"e": pa.array([[1.0, 2.0], [1.0, 2.0, 3.0]], pa.list_(pa.float32()))})
    assert declared_dimension(ragged.schema, "e") is None
    with pytest.raises(UserError, match="pass dimension d"):  # the library names its setting, not a flag
        resolve_dimension(ragged.schema, "e", None)
    assert resolve_dimension(ragged.schema, "e", 3) == 3
    tagged = pa.schema([pa.field("e", pa.list_(pa.float32()), metadata={"dpsynth.dimension": "7"})])
    assert resolve_dimension(tagged, "e", None) == 7
    with pytest.raises(UserError, match="differs from the 3"):
        resolve_dimension(fixed.schema, "e", 4)


@pytest.mark.parametrize("value_type", [pa.float64(), pa.float32()])
def test_a_denormal_or_huge_row_is_bounded_like_any_other(value_type):
    # One hostile record once turned its class's mean and synthetic rows into NaN.
    rows = [[1e-310, 2e-310, 0.0], [1e308, -1e308, 1e308], [-0.0, 0.0, 3.0], [1e-45, 0.0, 0.0]]
    if value_type == pa.float32():
        rows = [[1e-40, 2e-40, 0.0], [3e38, -3e38, 3e38], [-0.0, 0.0, 3.0], [1e-45, 0.0, 0.0]]
    table = pa.table({"embedding": pa.array(rows, pa.list_(value_type)), "label": ["a"] * 4})
    result = validate_table(table, SPEC)
    assert len(result.valid) == 4 and result.reason_counts == {}
    X = result.valid.embeddings.astype(np.float64)
    assert np.isfinite(X).all()
    norms = np.linalg.norm(X, axis=1)
    assert np.all(norms <= 1.0) and np.all(norms >= 1.0 - 3 * SPEC.grid)


def test_embedding_matrix_of_fixed_variable_chunked_and_empty_columns():
    fixed = pa.array([[1, 2], [3, 4]], pa.list_(pa.float64(), 2))
    variable = pa.chunked_array([pa.array([[1.0, 2.0]], pa.list_(pa.float32())),
                                 pa.array([[9.0, 9.0], [3.0, 4.0]], pa.list_(pa.float32())).slice(1)])
    for column in (fixed, variable):
        x = embedding_matrix(column)
        assert x.dtype == np.float32 and x.tolist() == [[1, 2], [3, 4]]
    assert embedding_matrix(pa.array([], pa.list_(pa.float32())), 5).shape == (0, 5)
    assert embedding_matrix(pa.array([], pa.list_(pa.float32(), 3))).shape == (0, 3)
    with pytest.raises(ValueError):
        embedding_matrix(pa.array([[1.0, 2.0], [3.0]], pa.list_(pa.float32())))


def _write(path, rows, labels, value_type=pa.list_(pa.float32())):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"embedding": pa.array(rows, value_type), "label": pa.array(labels, pa.int64())}), path)
    return path


def test_read_embedding_files_concatenates_files_and_skips_empty_ones(tmp_path):
    files = [_write(tmp_path / "a.parquet", [[1.0, 2.0], [3.0, 4.0]], [0, 1]),
             _write(tmp_path / "empty.parquet", [], []),
             _write(tmp_path / "b.parquet", [[5.0, 6.0]], [1], pa.list_(pa.float64(), 2))]
    x, y = read_embedding_files(files)
    assert x.dtype == np.float32 and x.tolist() == [[1, 2], [3, 4], [5, 6]] and y.tolist() == [0, 1, 1]
    x, y = read_embedding_files(files[1:2], dimension=5)
    assert x.shape == (0, 5) and y.shape == (0,)
    assert read_embedding_files([])[0].shape == (0, 0)


def test_read_embedding_files_refuses_a_bad_file_in_one_line(tmp_path):
    good = _write(tmp_path / "good.parquet", [[1.0, 2.0]], [0])
    with pytest.raises(UserError, match="expected 3"):
        read_embedding_files([good], dimension=3)
    with pytest.raises(UserError, match="differ between files"):
        read_embedding_files([good, _write(tmp_path / "wide.parquet", [[1.0, 2.0, 3.0]], [0])])
    with pytest.raises(UserError, match="non-finite"):
        read_embedding_files([_write(tmp_path / "nan.parquet", [[np.nan, 1.0]], [0])])
    with pytest.raises(UserError, match="null embeddings"):
        read_embedding_files([_write(tmp_path / "null.parquet", [None, [1.0, 2.0]], [0, 1])])
    with pytest.raises(UserError, match="cannot read columns"):
        read_embedding_files([good], embedding_column="vec")


def test_label_counts_skip_nulls_and_keep_first_appearance_order():
    table = pa.Table.from_batches([pa.record_batch({"label": pa.array(["b", None, "a"])}),
                                   pa.record_batch({"label": pa.array(["b", "c", None])})])
    assert list(label_counts(table, "label").items()) == [("b", 2), ("a", 1), ("c", 1)]
    assert label_counts(pa.table({"label": pa.array([3, 3, 1], pa.int64())}), "label") == {3: 2, 1: 1}
    assert label_counts(pa.table({"label": pa.array([], pa.string())}), "label") == {}


def test_validation_counts_name_every_diagnostic():
    assert validation_counts({"non_finite": 2}, 10, 8, 1) == {"rejected_non_finite": 2, "rows_read": 10,
                                                              "rows_valid": 8, "rows_clipped": 1}
