"""The encoder and decoder registries: one spec per family, everything else derived or checked.

Adding a family means registering one spec in its module; these tests fail
when a hand-written table (README.md, docs/) or a derived list disagrees with
the registry, or when registering starts importing a heavy package.
"""
from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dpsynth.decoders import DECODER_NAMES, DECODERS, WITHOUT_DECODER, get_decoder
from dpsynth.encoders import ENCODER_NAMES, ENCODERS, get_encoder
from dpsynth.errors import OptionError, UserError, join_words
from dpsynth.registry import Registry, Spec

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "kymatio", "transformers", "sentence_transformers", "onnxruntime", "apache_beam")


def _table(markdown: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped of backticks) of the first table after `heading`."""
    lines = markdown.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = itertools.takewhile(lambda line: line.startswith("|"), lines[start + 2:])  # past header and rule
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows]


def test_registering_imports_no_heavy_package():
    code = ("import sys, dpsynth.encoders, dpsynth.decoders; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_names_come_from_the_registry_in_registration_order():
    assert ENCODER_NAMES == ("efficientnet-lite0", "scatternet", "minilm", "torchscript:PATH", "onnx:PATH", "none")
    assert DECODER_NAMES == ("scatternet", "torchscript:PATH", "onnx:PATH")
    assert set(WITHOUT_DECODER) == {"efficientnet-lite0", "minilm", "none"}
    assert all(WITHOUT_DECODER.values())  # every encoder without a decoder says why


@pytest.mark.parametrize("name", [spec.name for spec in ENCODERS if not spec.takes_path])
def test_spec_matches_the_encoder_it_builds(name):
    spec, encoder = ENCODERS[name], get_encoder(name)  # builds configuration only: no weights loaded
    assert (encoder.name, encoder.modality) == (spec.name, spec.modality)
    assert encoder.output_dim == (spec.output_dim or 0)


def test_docs_tables_list_every_registered_family():
    encoders = _table((ROOT / "docs" / "encoders.md").read_text(), "## Encoders")
    assert [row[0] for row in encoders] == list(ENCODER_NAMES)
    for row, spec in zip(encoders, ENCODERS):
        assert spec.modality in row[1], row
        if spec.output_dim is not None:
            assert row[3].startswith(f"{spec.output_dim}-d"), row
    decoders = _table((ROOT / "docs" / "decode.md").read_text(), "## Decoders")
    assert [row[0] for row in decoders] == list(DECODER_NAMES)
    no_decoder = (ROOT / "docs" / "decode.md").read_text().split("## Decoders", 1)[1]
    assert join_words([f"`{name}`" for name in WITHOUT_DECODER]) + " have no public decoder" in no_decoder


def test_readme_lists_every_registered_encoder_and_decoder():
    readme = (ROOT / "README.md").read_text()
    for name in ENCODER_NAMES + DECODER_NAMES:
        assert f"`{name}`" in readme, name


def test_command_help_and_the_demo_list_derive_from_the_registry():
    from beam_pipeline import decode, demo, embed

    def help_of(parser, dest: str) -> str:
        parser.format_help()  # the help text must also survive argparse's formatting
        return next(action.help for action in parser._actions if action.dest == dest)

    assert help_of(embed.build_parser(), "encoder") == ENCODERS.help()
    assert all(f"{spec.display} ({spec.description})" in ENCODERS.help() for spec in ENCODERS)
    parser = decode.options.make_parser("dpsynth decode", "")
    decode.add_decode_arguments(parser)
    assert help_of(parser, "decoder") == DECODERS.help()
    assert [spec.name for spec in demo.demo_encoders()] == ["efficientnet-lite0", "scatternet"]


def test_library_errors_name_parameters_and_commands_name_flags():
    from beam_pipeline.options import settings_as_flags

    with pytest.raises(OptionError) as info:
        get_decoder("torchscript:/no/such/file.pt", stretch=False)
    assert "--" not in str(info.value) and "tv_weight" in str(info.value)
    with pytest.raises(UserError, match=r"\(--steps, --lr, --tv-weight, --scale and --no-stretch\) apply to "
                                        r"scatternet only"):
        with settings_as_flags(stretch="--no-stretch"):
            get_decoder("torchscript:/no/such/file.pt", stretch=False)
    with pytest.raises(UserError, match="^--project-dim: the output dimension 384 is not below"):
        with settings_as_flags():
            get_encoder("minilm", project_dim=384)


def _toy_registry() -> Registry[Spec]:
    toys: Registry[Spec] = Registry("toy", path_noun="file")
    toys.register(Spec(name="plain", factory=lambda: "plain", description="no settings"))
    toys.register(Spec(name="sized", factory=lambda size=1: f"sized {size}", description="a size",
                       options=("size",)))
    toys.register(Spec(name="file", factory=lambda path, size=1, colour="grey": f"{path} {size} {colour}",
                       description="a user's file", takes_path=True, options=("size", "colour")))
    return toys


def test_a_registered_family_is_resolved_built_and_listed():
    toys = _toy_registry()
    assert toys.names() == ("plain", "sized", "file:PATH")
    assert toys.help() == "plain (no settings), sized (a size) or file:PATH (a user's file)"
    assert toys.build("sized", {"size": 3}) == "sized 3"
    assert toys.build(" file:a.bin ", {"size": None, "colour": "rgb"}) == "a.bin 1 rgb"
    for name in ("file:", "file", "plain:x", "other", ""):
        with pytest.raises(UserError, match="unknown toy"):
            toys.build(name, {})
    with pytest.raises(ValueError):
        toys.register(Spec(name="plain", factory=str, description="twice"))


def test_a_setting_is_refused_with_the_settings_that_go_with_it():
    toys = _toy_registry()
    with pytest.raises(OptionError, match=re.escape("toy options (colour) apply to file:PATH only, not 'sized'")):
        toys.build("sized", {"colour": "rgb"})
    with pytest.raises(OptionError, match=re.escape("toy options (size) apply to sized and file:PATH only")):
        toys.build("plain", {"size": 2})
    with pytest.raises(OptionError, match=re.escape("toy options (shape) apply to no toy only")):
        toys.build("plain", {"shape": 2})


def test_failures_inside_a_factory_become_one_line_user_errors():
    def broken(path: str) -> None:
        raise RuntimeError("bad magic\nsecond line")

    def invalid() -> None:
        raise ValueError("must be positive")

    toys: Registry[Spec] = Registry("toy", path_noun="file")
    toys.register(Spec(name="broken", factory=broken, description="", takes_path=True))
    toys.register(Spec(name="invalid", factory=invalid, description=""))
    with pytest.raises(UserError, match=r"^broken file x.bin does not load: RuntimeError: bad magic$"):
        toys.build("broken:x.bin", {})
    with pytest.raises(UserError, match=r"^toy 'invalid': must be positive$"):
        toys.build("invalid", {})
