"""Each reader on small real files written here; rejections with reasons and counters."""
from __future__ import annotations

import gzip
import json
import pathlib
import pickle
import struct
import tempfile

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from dpsynth.errors import UserError
from transforms.readers import DEFAULT_BATCH_SIZE, Columns, ReadRecords, detect_format, idx_labels_path, inspect_input


def _dump(values, path):
    with open(path, "wb") as f:
        pickle.dump(list(values), f)


def collect(pcoll, path, label):
    """Write a PCollection's elements to a pickle file (callbacks run on pickled copies)."""
    return pcoll | f"{label}ToList" >> beam.combiners.ToList() | f"{label}Dump" >> beam.Map(_dump, str(path))


def _load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def _read(path: str, modality: str, batch_size: int = DEFAULT_BATCH_SIZE, **options) -> ReadRecords:
    """The driver's check, then the transform it describes."""
    return ReadRecords(inspect_input(path, modality, **options), batch_size)


def _run(reader: ReadRecords, tmp_dir=None):
    """Run the reader alone; return (records flattened, rejections, counters)."""
    tmp_dir = pathlib.Path(tempfile.mkdtemp(dir=tmp_dir))
    p = beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"]))
    read = p | reader
    collect(read["records"], tmp_dir / "records.pkl", "Records")
    collect(read["rejected"], tmp_dir / "rejected.pkl", "Rejected")
    result = p.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]
                if c.key.metric.namespace == "dpsynth.read"}
    out = {"records": _load(tmp_dir / "records.pkl"), "rejected": _load(tmp_dir / "rejected.pkl")}
    rows = []
    for batch in out["records"]:
        assert len(batch.items) == len(batch.labels) <= reader.batch_size
        ids = batch.ids if batch.ids is not None else [None] * len(batch)
        rows.extend(zip(ids, batch.labels, batch.items))
    return sorted(rows, key=lambda r: str(r[0])), out["rejected"], counters


def _png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture()
def digit():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(8, 8), dtype=np.uint8)


def test_image_folder(tmp_path, digit):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
    Image.fromarray(digit).save(tmp_path / "cat" / "a.png")
    Image.fromarray(np.stack([digit] * 3, -1)).save(tmp_path / "cat" / "b.jpg")
    Image.fromarray(digit).convert("RGBA").save(tmp_path / "dog" / "c.PNG")
    Image.fromarray(digit).convert("I;16").save(tmp_path / "dog" / "d.png")
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "dog" / "empty.jpg").write_bytes(b"")
    (tmp_path / "dog" / "README.txt").write_text("not an image")
    reader = _read(str(tmp_path), "image", batch_size=2)
    assert (reader.info.format, reader.info.has_ids, reader.info.label_type) == ("images", True, "string")
    rows, rejected, counters = _run(reader)
    assert [(i, l) for i, l, _ in rows] == [("cat/a.png", "cat"), ("cat/b.jpg", "cat"),
                                           ("dog/c.PNG", "dog"), ("dog/d.png", "dog")]
    np.testing.assert_array_equal(rows[0][2], digit)
    assert rows[1][2].shape == (8, 8, 3) and rows[2][2].shape == (8, 8, 3)
    np.testing.assert_array_equal(rows[2][2][:, :, 0], digit)  # alpha dropped, colour kept
    assert rows[3][2].shape == (8, 8) and rows[3][2].dtype == np.uint8
    assert sorted(r["id"] for r in rejected) == ["dog/broken.png", "dog/empty.jpg"]
    assert all(r["reason"].startswith("unreadable image") or r["reason"] == "empty image bytes"
               for r in rejected)
    assert counters["rejected"] == 2 and counters["records"] == 4
    assert counters["skipped_non_image_files"] == 1


def test_image_folder_without_images_is_a_user_error(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="has no images"):
        inspect_input(str(tmp_path), "image")
    with pytest.raises(UserError, match="expects text"):
        inspect_input(str(tmp_path), "text")


def test_parquet_image_bytes(tmp_path, digit):
    path = tmp_path / "images.parquet"
    table = pa.table({
        "id": ["r0", "r1", "r2", "r3", "r4"],
        "label": [3, 4, None, 5, 6],
        "picture": [_png_bytes(digit), _png_bytes(np.stack([digit] * 3, -1), "JPEG"), _png_bytes(digit),
                    b"garbage", None],
    })
    pq.write_table(table, path)
    reader = _read(str(path), "image", columns=Columns(image="picture"), batch_size=8)
    assert (reader.info.format, reader.info.has_ids, reader.info.label_type) == ("parquet", True, "int64")
    rows, rejected, counters = _run(reader)
    assert [(i, l) for i, l, _ in rows] == [("r0", 3), ("r1", 4)]
    np.testing.assert_array_equal(rows[0][2], digit)
    reasons = {r["id"]: r["reason"] for r in rejected}
    assert reasons["r2"] == "missing label"
    assert reasons["r3"].startswith("unreadable image")
    assert reasons["r4"] == "missing image"
    assert counters["rejected"] == 3 and counters["rejected_missing_label"] == 1


def test_parquet_text_without_ids_and_missing_column(tmp_path):
    path = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"text": ["hello there", "  ", "general kenobi"],
                             "label": ["a", "b", "c"]}), path)
    reader = _read(str(path), "text")
    assert (reader.info.has_ids, reader.info.label_type) == (False, "string")
    rows, rejected, _ = _run(reader)
    assert [(l, t) for _, l, t in rows] == [("a", "hello there"), ("c", "general kenobi")]
    assert [r["reason"] for r in rejected] == ["empty text"]
    with pytest.raises(UserError, match="no column 'body'"):
        inspect_input(str(path), "text", columns=Columns(text="body"))


def test_jsonl_plain_and_gzip(tmp_path):
    lines = [json.dumps({"id": 1, "text": "good morning", "label": "ham"}),
             "{not json",
             json.dumps({"id": 3, "text": "", "label": "spam"}),
             json.dumps({"id": 4, "text": "win money now"}),
             "",
             json.dumps({"id": 6, "text": "see you at lunch", "label": 0}),
             json.dumps([1, 2])]
    plain = tmp_path / "a.jsonl"
    plain.write_text("\n".join(lines) + "\n")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as f:
        f.write(lines[0].replace('"id": 1', '"id": 7') + "\n")
    reader = _read(str(tmp_path / "*.jsonl*"), "text", input_format="jsonl", batch_size=1)
    assert reader.info.has_ids
    rows, rejected, counters = _run(reader)
    assert rows == [("1", "ham", "good morning"), ("6", "0", "see you at lunch"),
                    ("7", "ham", "good morning")]
    reasons = sorted((r["position"], r["reason"].split(":")[0]) for r in rejected)
    assert reasons == [("line 2", "bad json"), ("line 3", "empty text"), ("line 4", "missing label"),
                       ("line 7", "bad json")]
    assert counters["rejected_bad_json"] == 2


def test_csv_with_quoted_newlines(tmp_path):
    path = tmp_path / "mail.csv"
    path.write_text('id,text,label\n'
                    'm1,"Hello,\nthis spans two lines",ham\n'
                    'm2,,spam\n'
                    'm3,cheap pills,\n'
                    'm4,meeting at noon,ham\n')
    reader = _read(str(path), "text")
    assert reader.info.format == "csv" and reader.info.has_ids
    rows, rejected, _ = _run(reader)
    assert rows == [("m1", "ham", "Hello,\nthis spans two lines"), ("m4", "ham", "meeting at noon")]
    assert sorted((r["id"], r["reason"]) for r in rejected) == [("m2", "empty text"), ("m3", "missing label")]
    with pytest.raises(UserError, match="no column 'class'"):
        inspect_input(str(path), "text", columns=Columns(label="class"))


def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_files(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 4, 5, 9], dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    reader = _read(str(tmp_path / "train-images-idx3-ubyte.gz"), "image", batch_size=3)
    assert (reader.info.format, reader.info.label_type) == ("idx", "int64")
    rows, rejected, _ = _run(reader)
    assert rejected == []
    by_index = sorted(rows, key=lambda r: int(r[0].split(":")[1]))
    assert [l for _, l, _ in by_index] == labels.tolist()
    for i, (_, _, image) in enumerate(by_index):
        np.testing.assert_array_equal(image, images[i])


def test_idx_mismatch_and_missing_labels_are_user_errors(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((4, 5, 5), np.uint8))
    with pytest.raises(UserError, match="does not exist"):
        inspect_input(str(tmp_path / "t10k-images-idx3-ubyte"), "image")
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(UserError, match="3,\\) labels for 4 images"):
        inspect_input(str(tmp_path / "t10k-images-idx3-ubyte"), "image")
    (tmp_path / "junk-images-idx3-ubyte").write_bytes(b"\x01\x02\x03")
    with pytest.raises(UserError, match="not an IDX file"):
        inspect_input(str(tmp_path / "junk-images-idx3-ubyte"), "image",
                    idx_labels=str(tmp_path / "t10k-labels-idx1-ubyte"))


def test_detect_format_and_missing_input(tmp_path):
    assert detect_format("gs://b/x/train.parquet") == "parquet"
    assert detect_format("data/*.jsonl.gz") == "jsonl"
    assert detect_format("mail.csv") == "csv"
    assert detect_format("train-images-idx3-ubyte.gz") == "idx"
    assert detect_format(str(tmp_path)) == "images"
    assert idx_labels_path("/d/t10k-images-idx3-ubyte.gz") == "/d/t10k-labels-idx1-ubyte.gz"
    with pytest.raises(UserError, match="cannot tell the format"):
        detect_format(str(tmp_path / "data.bin"))
    with pytest.raises(UserError, match="no input files match"):
        inspect_input(str(tmp_path / "none-*.csv"), "text")


def test_csv_with_an_unterminated_quote_counts_every_swallowed_line(tmp_path):
    # Without strict parsing the quote swallows every later record into one field, silently.
    path = tmp_path / "mail.csv"
    path.write_text('id,text,label\n'
                    'm1,fine,ham\n'
                    'm2,"never closed,spam\n'
                    'm3,lost,ham\n'
                    'm4,also lost,spam\n')
    rows, rejected, counters = _run(_read(str(path), "text"))
    assert rows == [("m1", "ham", "fine")]
    assert [(r["position"], r["reason"]) for r in rejected] == [
        (f"line {n}", "bad csv: unterminated quote") for n in (3, 4, 5)]
    assert counters["rejected_bad_csv"] == 3


def test_csv_with_a_stray_quote_rejects_that_record_and_reads_on(tmp_path):
    path = tmp_path / "mail.csv"
    path.write_text('id,text,label\nm1,"stray"quote,ham\nm2,fine,spam\nm3,a,b,extra\n')
    rows, rejected, _ = _run(_read(str(path), "text"))
    assert rows == [("m2", "spam", "fine")]
    assert sorted(r["reason"].split(":")[0] for r in rejected) == ["bad csv", "bad csv"]


def test_a_utf8_bom_is_stripped_in_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "bom.csv"
    csv_path.write_bytes("\ufeffid,text,label\nm1,hello,ham\n".encode("utf-8"))
    reader = _read(str(csv_path), "text")
    assert reader.info.has_ids  # the header's first name is "id", not "\ufeffid"
    assert _run(reader)[0] == [("m1", "ham", "hello")]
    jsonl_path = tmp_path / "bom.jsonl"
    jsonl_path.write_bytes("\ufeff{\"id\": \"j1\", \"text\": \"hi\", \"label\": \"a\"}\n".encode("utf-8"))
    reader = _read(str(jsonl_path), "text")
    rows, rejected, _ = _run(reader)
    assert rows == [("j1", "a", "hi")] and rejected == []


def test_a_decompression_bomb_is_a_counted_rejection(tmp_path, digit):
    import io

    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, format="PNG")  # 81 M pixels from a file of a few KB
    table = pa.table({"image": [bomb.getvalue(), _png_bytes(digit)], "label": [1, 2], "id": ["bomb", "ok"]})
    pq.write_table(table, tmp_path / "images.parquet")
    rows, rejected, counters = _run(_read(str(tmp_path / "images.parquet"), "image"))
    assert [r[0] for r in rows] == ["ok"]
    assert [(r["id"], r["reason"].split(":")[0]) for r in rejected] == [("bomb", "image too large")]
    assert counters["rejected_image_too_large"] == 1


def test_parquet_files_of_a_glob_must_agree_on_the_read_columns(tmp_path):
    pq.write_table(pa.table({"text": ["a"], "label": ["x"]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"text": [1], "label": ["x"]}), tmp_path / "b.parquet")
    with pytest.raises(UserError, match="b.parquet differs from .*a.parquet: its column 'text' is int64"):
        inspect_input(str(tmp_path / "*.parquet"), "text")


def test_each_format_is_registered_once_and_building_the_transform_reads_nothing(tmp_path):
    import dataclasses

    from transforms.readers import FORMATS, InputInfo
    from transforms.readers.base import READERS

    assert FORMATS == ("images", "parquet", "jsonl", "csv", "idx") and set(READERS) == set(FORMATS)
    assert all(READERS[name].name == name for name in FORMATS)
    info = InputInfo(str(tmp_path / "gone.parquet"), "parquet", "text", Columns(), ())
    assert ReadRecords(info, batch_size=4).info is info  # no file exists: the constructor never looked
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.has_ids = True
    with pytest.raises(UserError, match="--batch-size must be at least 1"):
        ReadRecords(info, batch_size=0)
    assert detect_format("mnist-idx3-train.parquet") == "parquet"  # a name is tried as Parquet before IDX
