"""The registry, the JSON Schema and the README's container reference stay in step; the README's
example container and samples work."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tagserver.container.loader import container_schema, load_container, schema_path
from tagserver.container.transformations import KIND_ORDER
from tagserver.container.triggers import OPERATORS, SOURCES
from tagserver.container.variables import URL_PARTS
from tagserver.tags import TAG_TYPES
from tests.unit.test_container_check import tagserver

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text("utf-8")
REFERENCE = README[README.index("## The container"):README.index("## HTTP endpoints")]
DEFS = container_schema()["$defs"]


def test_schema_enums_equal_the_code() -> None:
    assert sorted(DEFS["condition"]["properties"]["op"]["enum"]) == sorted(OPERATORS)
    assert set(DEFS["condition"]["properties"]) >= set(SOURCES)
    assert DEFS["transformation"]["properties"]["type"]["enum"] == list(KIND_ORDER)
    assert DEFS["transformation"]["properties"]["tag_types"]["items"]["enum"] == sorted(TAG_TYPES)
    url = [b for b in DEFS["variable"]["allOf"] if b["if"]["properties"]["type"]["const"] == "url"]
    assert url[0]["then"]["properties"]["part"]["enum"] == list(URL_PARTS)


def test_the_schema_is_published_where_the_readme_says() -> None:
    assert schema_path() == ROOT / "tagserver" / "container" / "schema.json"
    assert "tagserver/container/schema.json" in REFERENCE


def test_readme_has_an_example_per_operator_variable_kind_and_transformation() -> None:
    for op in OPERATORS:
        assert f'"op": "{op}"' in REFERENCE, op
    for kind in DEFS["variable"]["properties"]["type"]["enum"]:
        assert f'{{"type": "{kind}"' in REFERENCE, kind
    for kind in KIND_ORDER:
        assert f'"type": "{kind}"' in REFERENCE, kind
    for source in SOURCES:
        assert f'{{"{source}": ' in REFERENCE, source
    for tag_type in TAG_TYPES:
        assert f"**`{tag_type}`**" in REFERENCE, tag_type
    for part in URL_PARTS:
        assert f"`{part}`" in REFERENCE, part


def test_readme_examples_are_valid(tmp_path: Path) -> None:
    blocks = re.findall(r"```json\n(.*?)```", REFERENCE, re.S)
    complete = json.loads(blocks[0])
    folder = tmp_path / "tags"
    folder.mkdir()
    complete["$schema"] = str(schema_path())
    (folder / "container.json").write_text(json.dumps(complete), "utf-8")
    env = {"META_PIXEL_ID": "1111111111", "META_ACCESS_TOKEN": "EAAreadme-token",
           "CRM_API_TOKEN": "crm-readme-token"}
    assert [t.name for t in load_container(folder, environ=env).tags] == ["meta", "crm"]
    samples = [line for line in re.findall(r"```json\n(.*?)```", REFERENCE, re.S)[-1]
               .splitlines() if line.strip()]
    assert len(samples) == 2
    (tmp_path / "samples.jsonl").write_text("\n".join(samples) + "\n", "utf-8")
    proc = tagserver("check", str(folder), "--events", str(tmp_path / "samples.jsonl"), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # every example object of the reference tables is valid JSON
    for example in re.findall(r"\| `(\{.*?\})` \|", REFERENCE):
        if "..." not in example:
            json.loads(example)
