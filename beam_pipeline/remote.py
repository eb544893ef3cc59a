"""Fail fast, on the driver, when gs:// paths cannot work.

Without credentials (or without the GCS client's auth library) Beam's GCS
client connects anonymously and retries every request for minutes, so a
typo'd or unauthorised run hangs instead of failing. Before any work, a run
that names a gs:// path checks that Google credentials can be found and that
the storage endpoint resolves, each with a short timeout, and otherwise
stops with one line. DPSYNTH_SKIP_GCS_CHECK=1 skips the check (e.g. for an
emulator or anonymous access to a public bucket).
"""
from __future__ import annotations

import os
import socket
from typing import Sequence

from dpsynth.errors import UserError

GCS_HOST = "storage.googleapis.com"
TIMEOUT_S = 5.0


def gs_paths(argv: Sequence[str]) -> list[str]:
    """gs:// values among the command's arguments (--flag gs://... and --flag=gs://...)."""
    found = []
    for arg in argv:
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        if value.startswith("gs://"):
            found.append(value)
    return found


def check_gcs_access(argv: Sequence[str]) -> None:
    """UserError (one line) when a gs:// path is named and GCS cannot be used from here."""
    paths = gs_paths(argv)
    if not paths or os.environ.get("DPSYNTH_SKIP_GCS_CHECK") == "1":
        return
    where = paths[0]
    try:
        import google.auth
        import google.auth.exceptions
    except ImportError:
        raise UserError(f"{where}: gs:// paths need Google Cloud credentials, and the google-auth library is "
                        "not installed (pip install 'apache-beam[gcp]')") from None
    os.environ.setdefault("GCE_METADATA_TIMEOUT", str(int(TIMEOUT_S)))
    try:
        google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError:
        raise UserError(f"{where}: no Google Cloud credentials found; run `gcloud auth application-default "
                        "login` or set GOOGLE_APPLICATION_CREDENTIALS") from None
    try:
        socket.create_connection((GCS_HOST, 443), timeout=TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(f"{where}: cannot reach {GCS_HOST} ({exc.strerror or type(exc).__name__}); "
                        "check the network") from None
