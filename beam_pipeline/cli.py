"""The `dpsynth` command: one sub-command per entry-point module.

Each sub-command lives in its own module exposing `run(argv) -> int`, so that
`python -m beam_pipeline.<name>` and `dpsynth <name>` are the same program and
a module's heavy imports (torch, encoders) are paid only when it is used.
"""
from __future__ import annotations

import importlib
import sys
from typing import Sequence

from dpsynth.errors import UserError

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "synthesize": ("beam_pipeline.synthesize", "DP synthetic embeddings from a Parquet file of embeddings"),
    "embed": ("beam_pipeline.embed", "embed private records with a public encoder (output is private)"),
    "generate": ("beam_pipeline.generate", "embed and synthesize in one pipeline"),
    "sample": ("beam_pipeline.sample", "draw more synthetic rows from a release (no privacy cost)"),
    "demo": ("beam_pipeline.demo", "end-to-end demo on scikit-learn's bundled digits"),
    "evaluate": ("beam_pipeline.evaluate", "train a classifier on synthetic rows, test on real rows"),
    "decode": ("beam_pipeline.decode", "decode synthetic embeddings into images with a public decoder"),
}


def _usage() -> str:
    lines = ["usage: dpsynth <command> [options]", "", "commands:"]
    for name, (_, summary) in SUBCOMMANDS.items():
        lines.append(f"  {name:<11} {summary}")
    lines.append("")
    lines.append("Run `dpsynth <command> --help` for a command's options; `dpsynth --version` for the version.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("--version", "-V"):
        from dpsynth import __version__
        print(f"dpsynth {__version__}")
        return 0
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"dpsynth: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(SUBCOMMANDS[name][0])
    except ModuleNotFoundError as exc:
        if exc.name == SUBCOMMANDS[name][0]:
            print(f"dpsynth: error: command {name!r} is not available in this build", file=sys.stderr)
            return 2
        raise
    return run_guarded(module.run, rest)


def run_guarded(run, argv: Sequence[str]) -> int:
    """Call an entry point, turning user errors into one line and exit code 2."""
    try:
        result = run(list(argv))
    except UserError as exc:
        print(f"dpsynth: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dpsynth: interrupted; no output was published", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
