"""The `dpsynth` command: one sub-command per entry-point module.

Each sub-command lives in its own module exposing `run(argv) -> int`, so that
`python -m beam_pipeline.<name>` and `dpsynth <name>` are the same program and
a module's heavy imports (torch, encoders) are paid only when it is used.
"""
from __future__ import annotations

import errno
import importlib
import os
import shutil
import signal
import sys
import tempfile
import threading
from typing import Sequence

from dpsynth.errors import OptionError, UserError

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
    from beam_pipeline.quiet import quiet_third_party

    quiet_third_party()  # before Beam's import, whose warning would precede every error
    try:
        module = importlib.import_module(SUBCOMMANDS[name][0])
    except ModuleNotFoundError as exc:
        if exc.name == SUBCOMMANDS[name][0]:
            print(f"dpsynth: error: command {name!r} is not available in this build", file=sys.stderr)
            return 2
        raise
    return run_guarded(module.run, rest)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM (timeout, docker stop, Kubernetes) or SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_RECEIVED: list[int] = []  # signals seen: a runner may wrap our Terminated in an exception of its own


def _raise_terminated(signum, frame) -> None:
    _RECEIVED.append(signum)
    raise Terminated(signum)


def _stopped(signum: int) -> None:
    _cleanup()
    print(f"dpsynth: stopped by {signal.Signals(signum).name}; no output was published and no staging "
          "directory is left", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signum)


def _install_signal_handlers() -> dict:
    """SIGTERM and SIGINT unwind the run like an exception, so staging is removed (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[signum] = signal.signal(signum, _raise_terminated)
        except (OSError, ValueError):
            pass
    return previous


def _no_space(exc: BaseException) -> bool:
    """A full disk or quota, also when a runner wrapped the worker's OSError in its own exception."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc) or "[Errno 28]" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _cleanup() -> None:
    from beam_pipeline.outputs import abort_all

    abort_all()


def run_guarded(run, argv: Sequence[str]) -> int:
    """Call an entry point, turning user errors into one line and exit code 2.

    A signal (SIGTERM, SIGINT) or a full disk ends the run with one line and
    a non-zero code after every staging directory is removed; nothing is
    published. After a signal the process exits at once (os._exit), since a
    runner's worker threads may otherwise keep it alive.
    """
    previous = _install_signal_handlers()
    scratch, saved = _private_tempdir()
    try:
        return _run_reporting(run, argv)
    except BaseException as exc:
        if not (_RECEIVED or isinstance(exc, Terminated)):
            raise
        shutil.rmtree(scratch, ignore_errors=True)
        _stopped(exc.signum if isinstance(exc, Terminated) else _RECEIVED[-1])
        raise  # not reached: _stopped exits
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _restore_tempdir(scratch, saved)


def _private_tempdir() -> tuple[str, tuple]:
    """A temporary directory of this run that every library's temp files go under (TMPDIR, tempfile).

    Beam (beam-pipeline-temp*), our private scratch and any worker process
    put their temporary files there, so one removal at the end, or after a
    signal, leaves none behind, without touching other processes' files.
    """
    saved = (tempfile.tempdir, os.environ.get("TMPDIR"))
    scratch = tempfile.mkdtemp(prefix="dpsynth-run-")
    tempfile.tempdir = scratch
    os.environ["TMPDIR"] = scratch
    return scratch, saved


def _restore_tempdir(scratch: str, saved: tuple) -> None:
    tempfile.tempdir = saved[0]
    if saved[1] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved[1]
    shutil.rmtree(scratch, ignore_errors=True)


def _as_flags(exc: UserError) -> str:
    """The message, a library setting named by its flag where a command did not render it already."""
    if isinstance(exc, OptionError):
        from beam_pipeline.options import as_flag

        return exc.render(as_flag)
    return str(exc)


def _run_reporting(run, argv: Sequence[str]) -> int:
    """The entry point, with user errors, Ctrl-C and a full disk as one line each (signals: run_guarded)."""
    try:
        from beam_pipeline.remote import check_gcs_access

        check_gcs_access(argv)  # before any work: a gs:// path without credentials would hang for minutes
        result = run(list(argv))
    except UserError as exc:
        if _RECEIVED:
            raise
        _cleanup()
        print(f"dpsynth: error: {_as_flags(exc)}", file=sys.stderr)
        return 2
    except Terminated:
        raise
    except KeyboardInterrupt:
        if _RECEIVED:
            raise
        _cleanup()
        print("dpsynth: interrupted; no output was published", file=sys.stderr)
        return 130
    except Exception as exc:
        if _RECEIVED:
            raise
        _cleanup()
        if _no_space(exc):
            print("dpsynth: error: no space left on device; no output was published and no staging "
                  "directory is left", file=sys.stderr)
            return 1
        raise
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
