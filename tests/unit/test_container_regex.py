"""Container regexes are RE2: linear-time matching (no catastrophic backtracking), named and
numbered groups, only the first 8 KiB of a value matched, and a clear error for the syntax RE2
leaves out (backreferences, lookaround)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tagserver.container.regex import MAX_MATCH_LENGTH, ContainerPattern
from tests.containers import compile_container, config_problems, http_tag, make_scope, run

ROOT = Path(__file__).resolve().parents[2]

#: Patterns that take exponential time in a backtracking engine on ``"a" * n + "b"``.
CATASTROPHIC = ["(a+)+$", "(a|aa)+$", "(a|a?)+$", "(.*a){12}$", "^(a+)+b?c$"]


def test_catastrophic_patterns_finish_on_long_inputs(tmp_path: Path) -> None:
    # In a child process with a timeout: a backtracking engine would never finish here (34 "a"s
    # already take seconds), and the test must fail rather than hang.
    folder = tmp_path / "tags"
    folder.mkdir()
    variables = {f"v{i}": {"type": "regex", "input": "{{event.custom_data.note}}",
                           "pattern": p, "default": "none"} for i, p in enumerate(CATASTROPHIC)}
    tags = [http_tag(f"t{i}", conditions=[{"event": "custom_data.note", "op": "regex",
                                            "value": p}], body={"v": f"{{{{v{i}}}}}"})
            for i, p in enumerate(CATASTROPHIC)]
    (folder / "c.json").write_text(json.dumps({"variables": variables, "tags": tags}), "utf-8")
    script = textwrap.dedent("""
        import json, sys, time
        from pathlib import Path
        from tagserver.container.loader import load_container
        from tests.containers import make_scope, run
        container = load_container(Path(sys.argv[1]), environ={})
        started = time.perf_counter()
        fired = []
        for n in (34, 1000, 8000, 100_000):
            scope = make_scope({"custom_data": {"note": "a" * n + "b"}})
            fired.append(run(container, scope).fired)
        print(json.dumps({"fired": fired, "ms": (time.perf_counter() - started) * 1000}))
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # "a...ab" ends in "b": only "(a|a?)+$" matches (the empty string at the end); past 8 KiB the
    # "b" is cut off and the patterns anchored at the end match the run of "a"s
    assert result["fired"] == [["t2"], ["t2"], ["t2"], ["t0", "t1", "t2", "t3"]], result


def test_catastrophic_patterns_match_correctly(tmp_path: Path) -> None:
    container = compile_container(tmp_path, {
        "variables": {"run": {"type": "regex", "input": "{{event.custom_data.note}}",
                              "pattern": "((a|aa)+)$"}},
        "tags": [http_tag(conditions=[{"event": "custom_data.note", "op": "regex",
                                        "value": "(a+)+$"}], body={"run": "{{run}}"})],
    })
    (outbound,) = run(container, make_scope({"custom_data": {"note": "b" + "a" * 5000}})).outbound
    assert outbound.payload["body"] == {"run": "a" * 5000}


def test_only_the_first_8_kib_of_a_value_are_matched() -> None:
    assert MAX_MATCH_LENGTH == 8192
    pattern = ContainerPattern("b")
    assert pattern.search("a" * (MAX_MATCH_LENGTH - 1) + "b") is not None
    assert pattern.search("a" * MAX_MATCH_LENGTH + "b") is None


def test_named_and_numbered_groups() -> None:
    pattern = ContainerPattern(r"/(?P<market>[a-z]{2})/p/([A-Z]-\d+)", ignore_case=True)
    assert pattern.groups == 2 and pattern.groupindex == {"market": 1}
    match = pattern.search("https://shop.example/DE/p/a-1234?x=1")
    assert match is not None
    assert match.group("market") == "DE" and match.group(2) == "a-1234"
    assert match.groupdict() == {"market": "DE"}
    assert match.group(0) == "/DE/p/a-1234"


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(a)\1", "backreferences are not supported by RE2"),
        ("^(?=.*checkout)", "lookaround is not supported by RE2"),
        ("(?<!www\\.)shop", "lookaround is not supported by RE2"),
        ("(?!x)", "lookaround is not supported by RE2"),
    ],
)
def test_unsupported_syntax_is_a_config_error(tmp_path: Path, pattern: str, why: str) -> None:
    variable: dict[str, Any] = {"type": "regex", "input": "{{event.page_location}}",
                                "pattern": pattern}
    text = config_problems(tmp_path, {
        "variables": {"v": variable},
        "tags": [http_tag(conditions=[{"event": "page_location", "op": "regex",
                                        "value": pattern}], body={"v": "{{v}}"})],
    })
    assert "00.json: $.variables.v.pattern: the regular expression does not compile" in text
    assert "00.json: $.tags[0].conditions[0].value: the regular expression does not" in text
    assert why in text
    assert "RE2 syntax" in text  # the hint
