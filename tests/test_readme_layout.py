"""README.md's layout table stays true: every module is listed, and every listed path exists.

The table lists every .py file of the packages (dpsynth/, transforms/,
beam_pipeline/, with their subpackages) and every top-level directory of the
repository (plus setup.py), one path per row with its role. Adding, moving or
removing a module without updating the table fails here.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dpsynth", "transforms", "beam_pipeline")
SKIPPED_DIRS = {"__pycache__", "node_modules"}


def ignored_dirs() -> set[str]:
    """Directory names .gitignore ignores (build outputs, caches, demo output): not part of the layout."""
    names = set()
    for line in (ROOT / ".gitignore").read_text().splitlines():
        line = line.strip()
        name = line.strip("/")
        if line.endswith("/") and name and not any(c in name for c in "/*?[!#"):
            names.add(name)
    return names


def layout_rows(readme: str) -> dict[str, str]:
    """{path: role} of the table under '## Layout' (each row: | `path` | role |)."""
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or set(cells[0]) <= {"-"} or cells[0] == "path":
            continue
        match = re.fullmatch(r"`([^`]+)`", cells[0])
        assert match, f"a layout row names one path in backticks: {line!r}"
        assert match.group(1) not in rows, f"listed twice: {match.group(1)}"
        rows[match.group(1)] = cells[1]
    return rows


def modules_in_tree() -> set[str]:
    """Every .py file of the packages, and every top-level directory and setup.py."""
    skipped = SKIPPED_DIRS | ignored_dirs()
    wanted = {"setup.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if not skipped & set(path.relative_to(ROOT).parts):
                wanted.add(path.relative_to(ROOT).as_posix())
    for entry in ROOT.iterdir():
        if (entry.is_dir() and not entry.name.startswith(".") and not entry.name.endswith(".egg-info")
                and entry.name not in skipped | set(PACKAGES)):
            wanted.add(entry.name + "/")
    return wanted


def test_layout_table_parses():
    readme = ("intro\n## Layout\n\ntext\n\n| path | role |\n|---|---|\n| `a.py` | one |\n| `b/` | two |\n"
              "\n## Next\n| `c.py` | no |\n")
    assert layout_rows(readme) == {"a.py": "one", "b/": "two"}


def test_every_module_is_in_the_readme_layout():
    listed = layout_rows((ROOT / "README.md").read_text())
    missing = sorted(modules_in_tree() - set(listed))
    assert not missing, f"README.md's layout table lacks {missing}"


def test_every_path_in_the_readme_layout_exists_and_has_a_role():
    listed = layout_rows((ROOT / "README.md").read_text())
    absent = sorted(path for path in listed if not (ROOT / path).exists())
    assert not absent, f"README.md's layout table lists paths that do not exist: {absent}"
    assert all(role for role in listed.values())
