"""Atomic publication of an output directory.

Everything a run writes goes to a sibling staging directory with a unique
name; only a run that finished is renamed into place. A failed or killed run
therefore leaves no partial DIR, and its staging debris never blocks a re-run
(the next run picks a new unique name). Local directories are published with
one atomic rename. Object stores (gs://) have no directory rename: files are
renamed one by one and a _SUCCESS marker written last says the set is whole.
"""
from __future__ import annotations

import os
import shutil
import uuid
from typing import Optional

from apache_beam.io.filesystems import FileSystems

from dpsynth.errors import UserError

SUCCESS_MARKER = "_SUCCESS"


def _is_local(path: str) -> bool:
    return "://" not in path


def join(directory: str, name: str) -> str:
    return FileSystems.join(directory, name) if not _is_local(directory) else os.path.join(directory, name)


def exists(path: str) -> bool:
    if _is_local(path):
        return os.path.exists(path)
    return FileSystems.exists(path) or bool(FileSystems.match([path.rstrip("/") + "/*"])[0].metadata_list)


class StagedOutput:
    """A staging directory that becomes `final_dir` on publish(), or vanishes on abort()."""

    def __init__(self, final_dir: str, overwrite: bool = False) -> None:
        self.final_dir = final_dir.rstrip("/") or final_dir
        self.overwrite = overwrite
        if exists(self.final_dir) and not overwrite:
            raise UserError(f"output {self.final_dir} already exists; pass --overwrite to replace it")
        parent = os.path.dirname(os.path.abspath(self.final_dir)) if _is_local(self.final_dir) else None
        if parent is not None and not os.path.isdir(parent):
            raise UserError(f"the parent directory of --output does not exist: {parent}")
        self.staging_dir = f"{self.final_dir}.staging-{uuid.uuid4().hex[:12]}"
        if _is_local(self.staging_dir):
            os.makedirs(self.staging_dir)
        self._published = False

    def path(self, name: str) -> str:
        return join(self.staging_dir, name)

    def publish(self) -> None:
        if _is_local(self.final_dir):
            trash: Optional[str] = None
            if os.path.exists(self.final_dir):
                trash = f"{self.final_dir}.replaced-{uuid.uuid4().hex[:12]}"
                os.rename(self.final_dir, trash)
            os.rename(self.staging_dir, self.final_dir)
            if trash:
                shutil.rmtree(trash, ignore_errors=True)
        else:
            if self.overwrite and exists(self.final_dir):
                FileSystems.delete([self.final_dir.rstrip("/") + "/"])
            staged = [m.path for m in FileSystems.match([self.staging_dir + "/**"])[0].metadata_list]
            FileSystems.rename(staged, [self.final_dir + p[len(self.staging_dir):] for p in staged])
            with FileSystems.create(join(self.final_dir, SUCCESS_MARKER)) as handle:
                handle.write(b"")
            self._remove_staging()
        self._published = True

    def abort(self) -> None:
        if not self._published:
            self._remove_staging()

    def _remove_staging(self) -> None:
        if _is_local(self.staging_dir):
            shutil.rmtree(self.staging_dir, ignore_errors=True)
        else:
            try:
                FileSystems.delete([self.staging_dir + "/"])
            except Exception:  # best effort: a unique name never blocks a re-run
                pass
