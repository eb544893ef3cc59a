"""Atomic, non-destructive publication of outputs.

Everything a run writes goes to a sibling staging directory with a unique
name; only a run that finished is renamed into place. A failed or killed run
therefore leaves no partial DIR, and its staging debris never blocks a re-run
(the next run picks a new unique name). Local directories are published with
one rename that fails when the target appeared meanwhile (another run into
the same output): os.rename of a directory onto a non-empty directory fails,
and a published output is never empty (it holds MARKER). Object stores (gs://)
have no directory rename: files are renamed one by one and a _SUCCESS marker
written last says the set is whole; there the "exists?" check is repeated
just before publishing, which narrows but cannot close the race.

--overwrite replaces only a previous dpsynth output: a directory holding
MARKER (every directory published here holds one), or for single files
(embed's Parquet, evaluate's JSON) a file dpsynth marked as its own. It never
removes an arbitrary directory or file, and never an input (check_not_input).
"""
from __future__ import annotations

import errno
import glob as globlib
import os
import shutil
import uuid
from typing import Callable, Iterable, Optional

from apache_beam.io.filesystems import FileSystems

from dpsynth.errors import UserError

SUCCESS_MARKER = "_SUCCESS"
MARKER = "_DPSYNTH_OUTPUT"
MARKER_TEXT = b"This directory was written by dpsynth; `--overwrite` may replace it as a whole.\n"
OVERWRITE_HELP = ("replace an existing output, but only one dpsynth wrote (a directory holding its "
                  f"{MARKER} marker file); never an input, never a directory of other files")


def is_local(path: str) -> bool:
    return "://" not in path


def join(directory: str, name: str) -> str:
    return FileSystems.join(directory, name) if not is_local(directory) else os.path.join(directory, name)


def exists(path: str) -> bool:
    if is_local(path):
        return os.path.lexists(path)
    return FileSystems.exists(path) or bool(FileSystems.match([path.rstrip("/") + "/*"])[0].metadata_list)


# --------------------------------------------------------------------------
# An output must never be, contain, or lie inside an input
# --------------------------------------------------------------------------

def _canonical(path: str) -> str:
    """Absolute, symlinks resolved (local); gs:// paths are compared as strings."""
    if is_local(path):
        return os.path.realpath(os.path.abspath(os.path.expanduser(path)))
    return path.rstrip("/")


def _inside(child: str, parent: str) -> bool:
    if child == parent:
        return True
    sep = "/" if not is_local(parent) else os.sep
    return child.startswith(parent.rstrip(sep) + sep)


def lies_within(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or lies under it, after resolving both (symlinks, relative paths)."""
    return _inside(_canonical(path), _canonical(directory))


def _input_paths(pattern: str) -> list[tuple[str, bool]]:
    """(canonical path, is a directory of inputs) for an input file, directory or glob.

    A glob stands for its matched files and for every directory it reads
    from (its fixed prefix and each match's directory): an output there would
    be read back by the same glob, or its removal would take inputs with it.
    """
    found: list[tuple[str, bool]] = []
    magic = globlib.has_magic(pattern)
    if is_local(pattern):
        expanded = os.path.expanduser(pattern)
        if magic:
            prefix = expanded
            while globlib.has_magic(prefix):
                prefix = os.path.dirname(prefix)
            found.append((_canonical(prefix or "."), True))
            for match in globlib.glob(expanded, recursive=True):
                found.append((_canonical(match), os.path.isdir(match)))
                found.append((_canonical(os.path.dirname(match) or "."), True))
        else:
            found.append((_canonical(expanded), os.path.isdir(expanded)))
    else:
        if magic:
            prefix = pattern
            while globlib.has_magic(prefix):
                prefix = prefix.rsplit("/", 1)[0]
            found.append((prefix.rstrip("/"), True))
        else:
            found.append((pattern.rstrip("/"), pattern.endswith("/")))
    return found


def check_not_input(output: Optional[str], inputs: Iterable[tuple[str, Optional[str]]],
                    flag: str = "--output") -> None:
    """UserError when `output` is, contains, or lies inside any (flag, path) input.

    Inputs are files, directories or globs, and other outputs of the same
    run (--rejected-output, --diagnostics-output), which must not overlap
    either. Relative paths and symlinks are resolved first.
    """
    if not output:
        return
    target = _canonical(output)
    for input_flag, pattern in inputs:
        if not pattern:
            continue
        for path, is_dir in _input_paths(pattern):
            if target == path:
                raise UserError(f"{flag} {output} is the same path as {input_flag} {pattern}; "
                                "choose another output")
            if _inside(path, target):
                raise UserError(f"{flag} {output} contains {input_flag} {pattern}; choose an output "
                                "outside the inputs")
            if is_dir and _inside(target, path):
                raise UserError(f"{flag} {output} lies inside {input_flag} {pattern}; choose an output "
                                "outside the inputs")


def is_dpsynth_output(path: str) -> bool:
    """A directory dpsynth published (it holds MARKER): the only kind --overwrite removes."""
    if is_local(path):
        return os.path.isdir(path) and not os.path.islink(path) and os.path.isfile(os.path.join(path, MARKER))
    return FileSystems.exists(join(path, MARKER))


def _refuse_foreign(path: str) -> None:
    raise UserError(f"--overwrite replaces only an output dpsynth wrote, and {path} holds no {MARKER} "
                    "marker; remove it yourself or choose another output")


class OutputRaceError(UserError):
    """The target appeared while this run was working (another run into the same output)."""


def _raced(path: str) -> OutputRaceError:
    return OutputRaceError(f"output {path} appeared while this run was working (another run into the same "
                           "output?); it was left untouched and this run published nothing")


# --------------------------------------------------------------------------
# Staged directories
# --------------------------------------------------------------------------

class StagedOutput:
    """A staging directory that becomes `final_dir` on publish(), or vanishes on abort()."""

    def __init__(self, final_dir: str, overwrite: bool = False) -> None:
        self.final_dir = final_dir.rstrip("/") or final_dir
        self.overwrite = overwrite
        if exists(self.final_dir):
            if not overwrite:
                raise UserError(f"output {self.final_dir} already exists; pass --overwrite to replace it")
            if not is_dpsynth_output(self.final_dir):
                _refuse_foreign(self.final_dir)
        parent = os.path.dirname(os.path.abspath(self.final_dir)) if is_local(self.final_dir) else None
        if parent is not None and not os.path.isdir(parent):
            raise UserError(f"the parent directory of --output does not exist: {parent}")
        self.staging_dir = f"{self.final_dir}.staging-{uuid.uuid4().hex[:12]}"
        if is_local(self.staging_dir):
            os.makedirs(self.staging_dir)
        _register(self)
        self._published = False

    def path(self, name: str) -> str:
        return join(self.staging_dir, name)

    def _write_marker(self) -> None:
        with FileSystems.create(self.path(MARKER)) as handle:
            handle.write(MARKER_TEXT)

    def publish(self) -> None:
        self._write_marker()
        if is_local(self.final_dir):
            self._publish_local()
        else:
            self._publish_remote()
        self._published = True
        _unregister(self)

    def _publish_local(self) -> None:
        trash: Optional[str] = None
        if os.path.lexists(self.final_dir):
            if not self.overwrite:
                raise _raced(self.final_dir)
            if not is_dpsynth_output(self.final_dir):
                _refuse_foreign(self.final_dir)
            trash = f"{self.final_dir}.replaced-{uuid.uuid4().hex[:12]}"
            os.rename(self.final_dir, trash)
        try:
            os.rename(self.staging_dir, self.final_dir)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                if trash:  # put the replaced output back: this run lost the race
                    os.rename(trash, trash.replace(".replaced-", ".restored-", 1))
                raise _raced(self.final_dir) from None
            raise
        if trash:
            shutil.rmtree(trash, ignore_errors=True)

    def _publish_remote(self) -> None:
        if exists(self.final_dir):
            if not self.overwrite:
                raise _raced(self.final_dir)
            if not is_dpsynth_output(self.final_dir):
                _refuse_foreign(self.final_dir)
            FileSystems.delete([self.final_dir.rstrip("/") + "/"])
        staged = [m.path for m in FileSystems.match([self.staging_dir + "/**"])[0].metadata_list]
        FileSystems.rename(staged, [self.final_dir + p[len(self.staging_dir):] for p in staged])
        with FileSystems.create(join(self.final_dir, SUCCESS_MARKER)) as handle:
            handle.write(b"")
        self._remove_staging()

    def abort(self) -> None:
        if not self._published:
            self._remove_staging()
        _unregister(self)

    def _remove_staging(self) -> None:
        if is_local(self.staging_dir):
            shutil.rmtree(self.staging_dir, ignore_errors=True)
        else:
            try:
                FileSystems.delete([self.staging_dir + "/"])
            except Exception:  # best effort: a unique name never blocks a re-run
                pass


# --------------------------------------------------------------------------
# Staged single files (embed's Parquet, evaluate's JSON)
# --------------------------------------------------------------------------

FileCheck = Callable[[str], bool]


class StagedFile:
    """One output file written inside a staging directory, then linked into place.

    Local publication is os.link, which fails when the target exists: a
    second run into the same file loses the race instead of replacing the
    first run's file. With overwrite, only a file `is_ours` accepts (a file
    dpsynth wrote) is replaced. Temporary files of the writer (Beam's
    beam-temp-* directories) live in the staging directory and vanish with it.
    """

    def __init__(self, final_path: str, overwrite: bool = False, is_ours: Optional[FileCheck] = None,
                 flag: str = "--output") -> None:
        self.final_path, self.overwrite, self.is_ours, self.flag = final_path, overwrite, is_ours, flag
        self._check_target(final_path)
        if is_local(final_path):
            parent = os.path.dirname(os.path.abspath(final_path))
            if not os.path.isdir(parent):
                raise UserError(f"the parent directory of {flag} does not exist: {parent}")
        self.staging_dir = f"{final_path}.staging-{uuid.uuid4().hex[:12]}"
        if is_local(self.staging_dir):
            os.makedirs(self.staging_dir)
        self.path = join(self.staging_dir, os.path.basename(final_path.rstrip("/")) or "output")
        _register(self)
        self._published = False

    def _check_target(self, path: str) -> None:
        if not exists(path):
            return
        if not self.overwrite:
            raise UserError(f"{self.flag} {path} already exists; pass --overwrite to replace it")
        local_dir = is_local(path) and os.path.isdir(path)
        if local_dir or self.is_ours is None or not self.is_ours(path):
            raise UserError(f"--overwrite replaces only a file dpsynth wrote, and {path} is not one; "
                            "remove it yourself or choose another output")

    def publish(self) -> None:
        if is_local(self.final_path):
            if self.overwrite and os.path.lexists(self.final_path):
                self._check_target(self.final_path)
                os.replace(self.path, self.final_path)
            else:
                try:
                    os.link(self.path, self.final_path)
                except FileExistsError:
                    raise _raced(self.final_path) from None
        else:
            if exists(self.final_path):
                if not self.overwrite:
                    raise _raced(self.final_path)
                self._check_target(self.final_path)
                FileSystems.delete([self.final_path])
            FileSystems.rename([self.path], [self.final_path])
        self._published = True
        self.abort()

    def abort(self) -> None:
        StagedOutput._remove_staging(self)  # type: ignore[arg-type]
        _unregister(self)


# --------------------------------------------------------------------------
# Cleanup on signals: the CLI's SIGTERM handler aborts what is still staged
# --------------------------------------------------------------------------

_LIVE: list = []


def _register(staged) -> None:
    _LIVE.append(staged)


def _unregister(staged) -> None:
    if staged in _LIVE:
        _LIVE.remove(staged)


def abort_all() -> None:
    """Remove every staging directory of this process that was not published."""
    for staged in list(_LIVE):
        try:
            staged.abort()
        except Exception:  # noqa: BLE001 - cleanup must not mask the signal's message
            pass


def check_disjoint(outputs: Iterable[tuple[str, Optional[str]]], inputs: Iterable[tuple[str, Optional[str]]]) -> None:
    """Every output clear of every input and of every other output (one line on the first clash)."""
    outputs = [(flag, path) for flag, path in outputs if path]
    inputs = [(flag, path) for flag, path in inputs if path]
    for i, (flag, path) in enumerate(outputs):
        others = outputs[:i] + outputs[i + 1:]
        check_not_input(path, inputs + others, flag)
