"""Progress: per pass on --runner local (only on a terminal), one log line per Beam pass, --version."""
from __future__ import annotations

import logging


import dpsynth
from beam_pipeline.cli import main
from dpsynth.params import SynthesisConfig
from tests.conftest import make_mixture_data


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"dpsynth {dpsynth.__version__}"


def _fit(progress: bool):
    import pyarrow as pa

    from dpsynth.local import synthesize_tables
    X, y = make_mixture_data(rows=500)
    table = pa.table({"embedding": pa.array(list(X), pa.list_(pa.float32())), "label": pa.array(y)})
    return synthesize_tables([table], SynthesisConfig(epsilon=1, delta=1e-5, labels=(0, 1, 2, 3), rounds=2),
                             progress=progress, dimension=8)


def test_local_progress_bar_per_pass_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    _fit(True)
    err = capsys.readouterr().err
    for i, name in enumerate(["class", "seed", "round1", "final"], start=1):
        assert f"pass {i} of 4 ({name})" in err
    assert "rows/s" in err and "500/500" in err


def test_local_progress_is_quiet_off_a_terminal(capsys):
    _fit(True)  # pytest's captured stderr is not a TTY
    assert "pass 1 of" not in capsys.readouterr().err


def test_beam_logs_one_line_per_finished_pass(parquet_input, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dpsynth")
    assert main(["synthesize", "--input", parquet_input["pattern"], "--output", str(tmp_path / "o"),
                 "--epsilon", "1", "--delta", "1e-5", "--labels", "ant,bee,cat,dog", "--dimension", "8"]) == 0
    lines = [r.getMessage() for r in caplog.records if "finished" in r.getMessage()]
    assert [line.split(" (")[0] for line in lines] == [f"pass {i} of 3" for i in (1, 2, 3)]
