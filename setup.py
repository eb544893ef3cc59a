"""dpsynth: differentially private synthetic embeddings on Apache Beam."""
from pathlib import Path

from setuptools import find_packages, setup


def _requirements(name: str) -> list[str]:
    """Pins from requirements/NAME.txt, following `-r other.txt` includes."""
    path = Path(__file__).parent / "requirements" / f"{name}.txt"
    if not path.exists():
        return []
    out: list[str] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            out += [r for r in _requirements(line[3:].strip().removesuffix(".txt")) if r not in out]
        elif line and line not in out:
            out.append(line)
    return out


setup(
    name="dpsynth",
    version="0.1.0",
    description="Differentially private synthetic embeddings by DP clustering, on Apache Beam",
    python_requires=">=3.10",
    packages=find_packages(include=["dpsynth", "dpsynth.*", "beam_pipeline", "beam_pipeline.*",
                                    "transforms", "transforms.*"]),
    install_requires=_requirements("torch") + _requirements("core"),
    extras_require={
        "encoders": _requirements("encoders"),
        "eval": _requirements("eval"),
        "decode": _requirements("decode"),
        "test": _requirements("test"),
    },
    entry_points={"console_scripts": ["dpsynth=beam_pipeline.cli:main"]},
)
