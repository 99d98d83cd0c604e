"""tagserver.container.loader: good and bad container folders, the schema and ``tagserver validate``.

Each ``tests/fixtures/containers/bad/<case>/`` folder holds a container and ``expected.txt``: the
message fragments (one per line) the ConfigError must contain.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tagserver.container.loader import container_schema, load_container
from tagserver.exceptions import ConfigError
from tagserver.tags import TAG_TYPES
from tagserver.tags.meta import MetaTag

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "containers"
GOOD = FIXTURES / "good"
BAD = FIXTURES / "bad"
SHIPPED_TAGS = ROOT / "tags"
EXAMPLES = ROOT / "tagserver" / "examples"

ENVIRON = {
    "META_PIXEL_ID": "1234567890",
    "META_ACCESS_TOKEN": "EAAG-unit-token-one",
    "META_ACCESS_TOKEN_2": "EAAG-unit-token-two",
    "CRM_TOKEN": "crm-unit-token-0123",
}
BAD_CASES = sorted(p.name for p in BAD.iterdir() if p.is_dir())


def expected_fragments(case: str) -> list[str]:
    lines = (BAD / case / "expected.txt").read_text("utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def config_error(directory: Path, environ: dict[str, str] = ENVIRON) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_container(directory, environ=environ)
    return info.value


# ---------------------------------------------------------------------------------------------
# fixtures themselves


def test_every_bad_case_is_present() -> None:
    assert set(BAD_CASES) >= {
        "not_json",
        "unknown_key",
        "wrong_type",
        "literal_token",
        "env_unset",
        "duplicate_names",
        "bad_api_version",
        "empty_folder",
    }
    for case in BAD_CASES:
        assert expected_fragments(case), f"{case}/expected.txt is empty"


# ---------------------------------------------------------------------------------------------
# good container


def test_good_folder_loads() -> None:
    container = load_container(GOOD, environ=ENVIRON)
    assert [t.name for t in container.tags] == ["meta-standard", "meta-second-pixel"]
    entry_one, entry_two = container.tags
    first, second = entry_one.tag, entry_two.tag
    assert isinstance(first, MetaTag) and isinstance(second, MetaTag)
    assert first.pixel_id == "1234567890"
    assert first.access_token.reveal() == "EAAG-unit-token-one"
    (trigger,) = entry_one.triggers
    assert trigger.events == frozenset({"PageView", "Purchase", "AddToCart"})
    assert entry_one.require_consent == ("ad_storage",)
    assert first.api_version == "v25.0"
    assert second.pixel_id == "9876543210"
    assert second.access_token.reveal() == "EAAG-unit-token-two"
    (every,) = entry_two.triggers
    assert every.events is None and every.condition is None
    assert second.browser_mode == "none"
    assert second.api_version == "v26.0"
    assert second.test_event_code == "TEST12345"
    assert entry_two.require_consent == ("ad_storage", "ad_user_data")
    assert re.fullmatch(r"[0-9a-f]{12}", container.version)


def test_version_changes_with_the_content(tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    shutil.copytree(GOOD, folder)
    before = load_container(folder, environ=ENVIRON).version
    assert load_container(folder, environ=ENVIRON).version == before
    path = folder / "meta.json"
    path.write_text(path.read_text("utf-8").replace('"AddToCart"', '"Lead"'), "utf-8")
    assert load_container(folder, environ=ENVIRON).version != before


def test_good_folder_ignores_non_json_files(tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    shutil.copytree(GOOD, folder)
    (folder / "README.md").write_text("not a container", "utf-8")
    assert len(load_container(folder, environ=ENVIRON).tags) == 2


# ---------------------------------------------------------------------------------------------
# bad containers


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_container_error_names_the_problem(case: str) -> None:
    exc = config_error(BAD / case)
    text = str(exc)
    for fragment in expected_fragments(case):
        assert fragment in text, f"{case}: {fragment!r} not in:\n{text}"
    for issue in exc.issues:
        assert issue.path.startswith("$"), issue
        assert Path(issue.where) == BAD / case or Path(issue.where).parent == BAD / case, issue


def test_unknown_key_points_at_the_key_with_a_hint() -> None:
    exc = config_error(BAD / "unknown_key")
    (issue,) = [i for i in exc.issues if "pixel_idd" in i.path]
    assert issue.path == "$.tags[0].pixel_idd"
    assert issue.hint == "did you mean 'pixel_id'?"


def test_literal_access_token_is_not_echoed_in_the_error() -> None:
    # the error goes to the terminal and to logs: the token it complains about must not be there
    exc = config_error(BAD / "literal_token")
    assert [i.path for i in exc.issues] == ["$.tags[0].access_token"]
    assert "EAAGliteralTokenWrittenInTheFile" not in str(exc)


def test_env_unset_is_reported_even_when_set_to_blank() -> None:
    exc = config_error(BAD / "env_unset", {**ENVIRON, "TAGSERVER_TEST_UNSET_PIXEL": "   "})
    assert "environment variable TAGSERVER_TEST_UNSET_PIXEL is not set" in str(exc)


def test_env_set_makes_the_env_case_valid() -> None:
    container = load_container(
        BAD / "env_unset", environ={**ENVIRON, "TAGSERVER_TEST_UNSET_PIXEL": "5555555555"}
    )
    (entry,) = container.tags
    assert isinstance(entry.tag, MetaTag)
    assert entry.tag.pixel_id == "5555555555"


def test_duplicate_names_report_both_files() -> None:
    exc = config_error(BAD / "duplicate_names")
    (issue,) = exc.issues
    assert Path(issue.where).name == "b.json"
    assert issue.path == "$.tags[0].name"
    assert Path(issue.hint.removeprefix("also in ")).name == "a.json"


def test_missing_folder(tmp_path: Path) -> None:
    exc = config_error(tmp_path / "nope")
    assert "does not exist" in str(exc)
    proc = run_validate(tmp_path / "nope")
    assert proc.returncode == 1
    assert "the tags folder does not exist" in proc.stderr
    assert "--tags" not in proc.stderr + proc.stdout  # validate has no such flag


def test_every_problem_of_every_file_is_collected(tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    folder.mkdir()
    shutil.copy(BAD / "unknown_key" / "container.json", folder / "1.json")
    shutil.copy(BAD / "wrong_type" / "container.json", folder / "2.json")
    shutil.copy(BAD / "not_json" / "container.json", folder / "3.json")
    shutil.copy(BAD / "bad_api_version" / "container.json", folder / "4.json")
    exc = config_error(folder)
    problems = {(Path(i.where).name, i.path) for i in exc.issues}
    assert ("1.json", "$.tags[0].pixel_idd") in problems
    assert ("2.json", "$.tags[0].type") in problems
    assert ("3.json", "$") in problems
    assert ("4.json", "$.tags[0].api_version") in problems


def test_not_utf8_file(tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    folder.mkdir()
    (folder / "latin1.json").write_bytes(b'{"description": "caf\xe9", "tags": []}')
    exc = config_error(folder)
    assert "latin1.json: $: the file is not UTF-8" in str(exc)


def test_pixel_id_from_the_environment_is_checked_like_a_literal_one() -> None:
    # a literal pixel_id must match ^[0-9]{5,20}$; the same value from META_PIXEL_ID ends up in
    # the Graph API URL path and must not bypass that check
    exc = config_error(SHIPPED_TAGS, {**ENVIRON, "META_PIXEL_ID": "123/../../me"})
    assert "pixel_id: the environment variable META_PIXEL_ID is not 5 to 20 digits" in str(exc)
    assert "123/../../me" not in str(exc)


def test_a_short_literal_pixel_id_says_what_is_expected(tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    folder.mkdir()
    tag = {"name": "m", "type": "meta", "pixel_id": "1234",
           "access_token": {"env": "META_ACCESS_TOKEN"}}
    (folder / "m.json").write_text(json.dumps({"tags": [tag]}), "utf-8")
    (issue,) = config_error(folder).issues
    assert issue.path == "$.tags[0].pixel_id"
    assert issue.message == 'expected 5 to 20 digits, or {"env": "VARIABLE"}'


def test_a_duplicate_tag_name_does_not_hide_the_tags_other_problems(tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    folder.mkdir()
    tag = {"name": "m", "type": "meta", "pixel_id": "1234567890",
           "access_token": {"env": "META_ACCESS_TOKEN"}}
    second = {**tag, "custom_data": {"x": "{{nope}}"}, "triggers": ["missing"]}
    (folder / "m.json").write_text(json.dumps({"tags": [tag, second]}), "utf-8")
    found = {(i.path, i.message) for i in config_error(folder).issues}
    assert found == {
        ("$.tags[1].name", "duplicate tag name 'm'"),
        ("$.tags[1].custom_data.x", "unknown variable 'nope'"),
        ("$.tags[1].triggers[0]", "unknown trigger 'missing'"),
    }


# ---------------------------------------------------------------------------------------------
# schema, registry and shipped containers


def test_schema_type_enum_equals_the_tag_registry() -> None:
    schema = container_schema()
    assert schema["$defs"]["tag"]["properties"]["type"]["enum"] == sorted(TAG_TYPES)


def test_every_registered_type_has_a_schema_branch() -> None:
    branches = container_schema()["$defs"]["tag"]["allOf"]
    consts = {b["if"]["properties"]["type"]["const"] for b in branches}
    assert consts == set(TAG_TYPES)


@pytest.mark.parametrize("folder", [SHIPPED_TAGS, EXAMPLES], ids=["tags", "examples"])
def test_shipped_containers_validate(folder: Path) -> None:
    container = load_container(folder, environ=ENVIRON)
    assert len(container.tags) >= 1
    (meta,) = [entry.tag for entry in container.tags if isinstance(entry.tag, MetaTag)]
    assert isinstance(meta, MetaTag)
    assert meta.pixel_id == "1234567890"
    assert meta.access_token.reveal() == "EAAG-unit-token-one"


@pytest.mark.parametrize("folder", [SHIPPED_TAGS, EXAMPLES], ids=["tags", "examples"])
def test_shipped_containers_need_the_meta_variables(folder: Path) -> None:
    exc = config_error(folder, {})
    assert "META_PIXEL_ID" in str(exc)
    assert "META_ACCESS_TOKEN" in str(exc)


def test_shipped_tags_and_examples_are_identical() -> None:
    shipped = sorted(p.name for p in SHIPPED_TAGS.glob("*.json"))
    examples = sorted(p.name for p in EXAMPLES.glob("*.json"))
    assert shipped == examples
    for name in shipped:
        a = json.loads((SHIPPED_TAGS / name).read_text("utf-8"))
        b = json.loads((EXAMPLES / name).read_text("utf-8"))
        assert a["tags"] == b["tags"], name


# ---------------------------------------------------------------------------------------------
# tagserver validate


def run_validate(
    folder: Path, environ: dict[str, str] = ENVIRON
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAGSERVER_", "META_"))}
    env.update(environ)
    return subprocess.run(
        [sys.executable, "-m", "tagserver", "validate", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_validate_good_folder_exits_0() -> None:
    proc = run_validate(GOOD)
    assert proc.returncode == 0, proc.stderr
    assert "2 tag(s) valid" in proc.stdout


def test_cli_validate_shipped_tags_exits_0() -> None:
    proc = run_validate(SHIPPED_TAGS)
    assert proc.returncode == 0, proc.stderr


def test_cli_validate_prints_every_problem_with_file_and_path(tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    folder.mkdir()
    shutil.copy(BAD / "unknown_key" / "container.json", folder / "one.json")
    shutil.copy(BAD / "wrong_type" / "container.json", folder / "two.json")
    shutil.copy(BAD / "env_unset" / "container.json", folder / "three.json")
    proc = run_validate(folder)
    assert proc.returncode == 1
    out = proc.stderr + proc.stdout
    assert f"{folder / 'one.json'}: $.tags[0].pixel_idd: unknown key 'pixel_idd'" in out
    assert "did you mean 'pixel_id'" in out
    assert f"{folder / 'two.json'}: $.tags[0].type:" in out
    assert (
        f"{folder / 'three.json'}: $.tags[0].pixel_id: "
        "environment variable TAGSERVER_TEST_UNSET_PIXEL is not set"
    ) in out
    assert "Traceback" not in out


def test_cli_validate_missing_variables_exits_1() -> None:
    proc = run_validate(SHIPPED_TAGS, {})
    assert proc.returncode == 1
    assert "META_PIXEL_ID" in proc.stderr


# ---------------------------------------------------------------------------------------------
# strict JSON


def test_duplicate_keys_are_an_error_naming_key_and_path(tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    folder.mkdir()
    tag = json.dumps({"name": "m", "type": "meta", "pixel_id": "1234567890",
                      "access_token": {"env": "META_ACCESS_TOKEN"}})
    text = (f'{{"tags": [{tag[:-1]}, "events": ["Lead"], "events": ["Purchase"]}}],'
            f' "tags": []}}')
    (folder / "dup.json").write_text(text, "utf-8")
    exc = config_error(folder)
    found = {(Path(i.where).name, i.path, i.message) for i in exc.issues}
    assert ("dup.json", "$.tags", "duplicate key 'tags' in one object") in found
    # the inner duplicate was in the list the second "tags" replaced; a kept one is found too
    (folder / "dup.json").write_text(f'{{"tags": [{tag[:-1]}, "events": ["Lead"], '
                                     f'"events": ["Purchase"]}}]}}', "utf-8")
    exc = config_error(folder)
    (issue,) = exc.issues
    assert (issue.path, issue.message) == ("$.tags[0].events", "duplicate key 'events' in one "
                                                               "object")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(tmp_path: Path, constant: str) -> None:
    folder = tmp_path / "tags"
    folder.mkdir()
    text = '{"variables": {"v": {"type": "constant", "value": VALUE}}, "tags": []}'
    (folder / "nan.json").write_text(text.replace("VALUE", constant), "utf-8")
    exc = config_error(folder)
    (issue,) = exc.issues
    assert issue.path == "$" and issue.message == f"not JSON: {constant} is not a JSON number"


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    shutil.copytree(GOOD, folder)
    path = folder / "meta.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(load_container(folder, environ=ENVIRON).tags) == 2
