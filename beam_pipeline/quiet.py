"""Keep third-party chatter off stderr, so that an error is one line.

Beam logs "apitools not found ..." on import through the root logger, and
Beam, PyArrow and torch emit warnings and INFO lines of their own. The CLI's
contract is that stderr holds dpsynth's own lines (errors, warnings,
progress), so those are dropped unless DPSYNTH_VERBOSE=1 asks for them.
Our own loggers (dpsynth*) and our own prints are never touched.
"""
from __future__ import annotations

import logging
import os
import warnings

OUR_PACKAGES = ("dpsynth", "beam_pipeline", "transforms", "benchmarks", "tests")
THIRD_PARTY_LOGGERS = ("apache_beam", "google", "urllib3", "absl", "torch", "PIL", "filelock", "fsspec",
                       "numexpr", "matplotlib")


def _ours(record: logging.LogRecord) -> bool:
    name = record.name or ""
    if name.split(".", 1)[0] in OUR_PACKAGES:
        return True
    path = (record.pathname or "").replace("\\", "/")
    return not ("/site-packages/" in path or "/dist-packages/" in path or "/lib/python" in path)


class _DropThirdParty(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _ours(record)


_FILTER = _DropThirdParty()


def quiet_third_party() -> None:
    """Drop third-party log records and warnings (idempotent); DPSYNTH_VERBOSE=1 keeps them."""
    if os.environ.get("DPSYNTH_VERBOSE") == "1":
        return
    root = logging.getLogger()
    if _FILTER not in root.filters:
        root.addFilter(_FILTER)  # records logged on root itself (Beam's apitools line)
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    warnings.simplefilter("ignore")
    for package in OUR_PACKAGES:  # our own UserWarnings stay; ResourceWarning etc. stay off as by default
        warnings.filterwarnings("default", category=UserWarning, module=rf"{package}(\.|$)")
