"""Exact diagnostics (rows read, used, rejected by reason): PRIVATE, never in the release.

These counts change by exactly one when one record is added or removed, so
they are not differentially private. A run writes them only to a file the
data owner names with `--diagnostics-output PATH`, outside the release
directory and outside every input, marked PRIVATE in its content. While the
job runs they live in a scratch file beside PATH (or in a private temporary
directory when no PATH was asked for), never inside the release's staging
directory, so no failure can leave them where the release is published.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from typing import Iterable, Optional

from apache_beam.io.filesystems import FileSystems

from dpsynth.errors import UserError
from dpsynth.validation import REJECTED_PREFIX, ROWS_VALID
from beam_pipeline.outputs import is_local, lies_within

PRIVATE_MARKER = ("PRIVATE: exact counts of the private input (not differentially private). "
                  "For the data owner only; never share this file with the release.")
TELEMETRY = "private operator telemetry, exact, not DP"
UNAVAILABLE = "_unavailable"  # the pipeline's counts could not be read back (e.g. workers' local disks)


def check_location(path: str, output_dir: str, inputs: Iterable[str], overwrite: bool) -> None:
    """Refuse a diagnostics path inside the release directory, inside or equal to an input, or taken."""
    if lies_within(path, output_dir):
        raise UserError(f"--diagnostics-output {path} lies inside the release directory {output_dir}; "
                        "exact counts must stay outside what is shared: choose a path elsewhere")
    for item in inputs:
        if item and lies_within(path, item):
            raise UserError(f"--diagnostics-output {path} is or lies inside the input {item}; choose another path")
    if is_local(path):
        if os.path.isdir(path):
            raise UserError(f"--diagnostics-output {path} is a directory; give a file path")
        if os.path.exists(path) and not overwrite:
            raise UserError(f"--diagnostics-output {path} already exists; pass --overwrite to replace it")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise UserError(f"the parent directory of --diagnostics-output does not exist: {parent}")
    elif FileSystems.exists(path) and not overwrite:
        raise UserError(f"--diagnostics-output {path} already exists; pass --overwrite to replace it")


class PrivateScratch:
    """Where the pipeline writes its exact counts while it runs; removed by close()."""

    def __init__(self, diagnostics_output: Optional[str], output_dir: str) -> None:
        self._dir: Optional[str] = None
        if diagnostics_output:
            self.path = f"{diagnostics_output}.partial-{uuid.uuid4().hex[:12]}"
        elif is_local(output_dir):
            self._dir = tempfile.mkdtemp(prefix="dpsynth-private-")  # mode 0700
            self.path = os.path.join(self._dir, "diagnostics.json")
        else:  # an object store: beside the release directory, never inside it
            self.path = f"{output_dir.rstrip('/')}.private-diagnostics-{uuid.uuid4().hex[:12]}.json"

    def read(self) -> dict:
        """The summed counters; {"_unavailable": 1} where the workers' file cannot be read here."""
        if not FileSystems.exists(self.path):
            return {UNAVAILABLE: 1}
        with FileSystems.open(self.path) as handle:
            return json.loads(handle.read().decode()) or {}

    def close(self) -> None:
        try:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
            elif FileSystems.exists(self.path):
                FileSystems.delete([self.path])
        except Exception:  # noqa: BLE001 - best effort; the scratch name is unique
            pass


def write_private(counts: dict, path: str) -> None:
    """The data owner's PRIVATE diagnostics file, written whole (rename into place where local)."""
    body = json.dumps({"privacy": PRIVATE_MARKER, "counts": dict(sorted(counts.items()))}, indent=2).encode()
    if is_local(path):
        temporary = f"{path}.writing-{uuid.uuid4().hex[:12]}"
        try:
            with open(temporary, "wb") as handle:
                handle.write(body)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    else:
        with FileSystems.create(path) as handle:
            handle.write(body)


def rejected_warning(counts: dict, diagnostics_output: Optional[str], rejected_output: Optional[str]) -> Optional[str]:
    """The console line about malformed rows, labelled as private telemetry (never a silent drop)."""
    rejected = sum(n for name, n in counts.items() if name.startswith(REJECTED_PREFIX))
    if not rejected:
        return None
    where = (f"counts by reason in {diagnostics_output}" if diagnostics_output
             else "pass --diagnostics-output PATH for counts by reason")
    if rejected_output:
        where += f"; the rows are in {rejected_output}"
    return f"dpsynth: warning ({TELEMETRY}): {rejected} input rows were rejected as malformed ({where})"


def empty_warning(counts: dict) -> Optional[str]:
    if UNAVAILABLE not in counts and counts.get(ROWS_VALID, 0) == 0:
        return (f"dpsynth: warning ({TELEMETRY}): no input row was usable; the release holds noise only")
    return None
