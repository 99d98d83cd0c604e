"""docs/SCALING.md stays honest: every figure of its "Measured" section is one that bench/README.md
reports, every file it names exists, and README.md links it."""

from __future__ import annotations

import re

from tests.deploy_files import REPO

SCALING = REPO / "docs" / "SCALING.md"


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_measured_figures_are_the_benchmarks_own() -> None:
    measured = section(SCALING.read_text(), "Measured")
    bench = (REPO / "bench" / "README.md").read_text()
    figures = {f.rstrip(".,") for f in re.findall(r"\d[\d,.]*", measured)}
    assert len(figures) > 20, "the section lost its figures: test broken"
    missing = sorted(f for f in figures if f not in bench)
    assert missing == [], f"figures bench/README.md does not report: {missing}"


def test_commands_of_the_measured_section_are_in_the_benchmarks_readme() -> None:
    measured = section(SCALING.read_text(), "Measured")
    bench = " ".join((REPO / "bench" / "README.md").read_text().split())
    commands = re.findall(r"`(\.venv/bin/python bench/[^`]+)`", measured)
    assert len(commands) == 2
    for command in commands:
        assert " ".join(command.split()) in bench, command


def test_named_files_exist() -> None:
    text = SCALING.read_text()
    named = set(re.findall(r"`((?:tests|tagserver|bench|deploy)/[\w./-]+?)(?:::\w+)?`", text))
    named |= set(re.findall(r"\]\(\.\./([\w./-]+)\)", text))
    assert named, "no file named: test broken"
    for name in sorted(named):
        assert (REPO / name).exists(), name


def test_readme_links_the_scaling_doc() -> None:
    assert "(docs/SCALING.md)" in (REPO / "README.md").read_text()
