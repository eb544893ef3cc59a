"""A release directory read back: only what a DP run publishes, checked before use.

Drawing more rows (`dpsynth sample`), figures and the torch Dataset start from
a release, never from private data. A directory that is not a complete DP
release (gmm.json and privacy.json, both valid) is refused with one line, and
so is a NOT PRIVATE one (made with a test-only switch) unless the caller
explicitly accepts it.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Callable, Optional

from dpsynth.accounting import PrivacyLedger
from dpsynth.errors import UserError
from dpsynth.gmm import ReleasedMixture

MIXTURE_FILE = "gmm.json"
PRIVACY_FILE = "privacy.json"
# privacy.json of rows drawn later from a release says so under this key.
SAMPLED_FROM_KEY = "sampled_from"


@dataclasses.dataclass(frozen=True)
class Release:
    """A checked release: its mixture, and privacy.json as published (a dict)."""

    directory: str
    mixture: ReleasedMixture
    privacy: dict[str, Any]
    gmm: dict[str, Any]

    @property
    def private(self) -> bool:
        return self.mixture.private


def parse_release(directory: str, read_text: Callable[[str], Optional[str]],
                  allow_not_private: bool = False) -> Release:
    """Check and parse a release; read_text(name) returns a file's text or None when absent.

    allow_not_private is TEST ONLY: it accepts a release made with a fixed
    seed or without noise (whatever is drawn from it stays NOT PRIVATE).
    """
    documents = {}
    for name in (MIXTURE_FILE, PRIVACY_FILE):
        text = read_text(name)
        if text is None:
            raise UserError(f"{directory} is not a dpsynth release: it has no {name}")
        try:
            documents[name] = json.loads(text)
        except json.JSONDecodeError:
            raise UserError(f"{directory} is not a dpsynth release: {name} is not valid JSON") from None
    gmm, privacy = documents[MIXTURE_FILE], documents[PRIVACY_FILE]
    try:
        mixture = ReleasedMixture.from_json(gmm)
        ledger = PrivacyLedger.from_json(privacy)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"{directory} is not a dpsynth release: gmm.json or privacy.json is malformed "
                        f"({type(exc).__name__}: {exc})") from None
    private = mixture.private and math.isfinite(ledger.spent_epsilon)
    if not private and not allow_not_private:
        raise UserError(f"{directory} is NOT PRIVATE (made with a test-only switch: fixed seed or no noise); "
                        "refusing to draw from it")
    if not private:
        mixture = dataclasses.replace(mixture, private=False)
    return Release(directory, mixture, privacy, gmm)


def load_release(directory: str | Path, allow_not_private: bool = False) -> Release:
    """A local release directory (see parse_release)."""
    path = Path(directory)
    if not path.is_dir():
        raise UserError(f"{directory} is not a directory")

    def read_text(name: str) -> Optional[str]:
        try:
            return (path / name).read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {path / name}: {exc}") from None

    return parse_release(str(directory), read_text, allow_not_private)


def sampled_privacy(release: Release, private: bool) -> dict[str, Any]:
    """privacy.json for rows drawn from `release`: its ledger, plus where they came from."""
    out = dict(release.privacy)
    out[SAMPLED_FROM_KEY] = {
        "release": release.directory,
        "note": f"drawn from the release in {release.directory}: post-processing of its mixture, "
                "no further privacy budget spent" + ("" if private else
                                                    "; NOT PRIVATE (test-only switch)")}
    return out
