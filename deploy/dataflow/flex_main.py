"""Entry file of the dpsynth Dataflow Flex Template.

Dataflow's Python template launcher runs this file with every template
parameter as `--name=value` and then the Beam options it manages (project,
region, temp/staging locations, service account, ...). Template parameter
names are the argparse destinations of the synthesis flags (`embedding_column`
for `--embedding-column`), because the launcher and the console expect
identifier-like names; this file maps them back to the CLI's spelling and turns
`--overwrite=true` into the bare switch, then runs `dpsynth synthesize`.
The mapping is built from the same parser the CLI uses, so it cannot drift.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off", ""}


def synthesis_parser() -> argparse.ArgumentParser:
    """The flags of `dpsynth synthesize` (only their spellings and arity matter here).

    tests/test_deploy.py checks this against the parser synthesize.run() builds.
    """
    from beam_pipeline.options import add_synthesis_arguments

    parser = argparse.ArgumentParser(add_help=False)
    # The flags synthesize.run() adds itself, before the shared synthesis flags.
    parser.add_argument("--input")
    parser.add_argument("--embedding-column")
    parser.add_argument("--dimension")
    add_synthesis_arguments(parser)
    return parser


def template_parameter_names(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Template parameter name (the flag's dest) -> its argparse action."""
    names: dict[str, argparse.Action] = {}
    for action in parser._actions:  # argparse offers no public iterator over actions
        if any(opt.startswith("--") for opt in action.option_strings):
            names[action.dest] = action
    return names


def translate(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """Rewrite template-style `--dest=value` arguments into the CLI's flags.

    Arguments that are not synthesis parameters (Beam's pipeline options) pass
    through unchanged, as `dpsynth synthesize` hands them to PipelineOptions.
    """
    from dpsynth.errors import UserError

    actions = template_parameter_names(parser)
    out: list[str] = []
    for arg in argv:
        if not arg.startswith("--"):
            out.append(arg)
            continue
        name, has_value, value = arg[2:].partition("=")
        action = actions.get(name) or actions.get(name.replace("-", "_"))
        if action is None:
            out.append(arg)
            continue
        flag = next(opt for opt in action.option_strings if opt.startswith("--"))
        if action.nargs == 0:  # a switch such as --overwrite
            if not has_value or value.strip().lower() in _TRUE:
                out.append(flag)
            elif value.strip().lower() not in _FALSE:
                raise UserError(f"template parameter {name} must be true or false, not {value!r}")
            continue
        if has_value:
            if value == "":  # an optional template parameter left empty: use the default
                continue
            out.append(f"{flag}={value}")
        else:
            out.append(flag)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from beam_pipeline import synthesize
    from beam_pipeline.cli import run_guarded

    args = list(sys.argv[1:] if argv is None else argv)
    parser = synthesis_parser()
    # translate() inside run_guarded: a bad switch value is a one-line user error.
    return run_guarded(lambda rest: synthesize.run(translate(rest, parser)), args)


if __name__ == "__main__":
    sys.exit(main())
