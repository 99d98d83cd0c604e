"""Secrecy propagates through every composition of variables, so that no secret reaches Meta,
a condition or event data by way of a default, a lookup table, a regex or URL input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.containers import ENVIRON, compile_container, config_problems, http_tag, meta_tag

TOK = {"type": "secret", "env": "CRM_TOKEN"}

#: A variable ``v`` that depends on the secret ``tok`` in one way each.
COMPOSITIONS: dict[str, dict[str, Any]] = {
    "query default": {"type": "query", "name": "x", "default": "{{tok}}"},
    "event_data default": {"type": "event_data", "path": "custom_data.x", "default": "{{tok}}"},
    "cookie default": {"type": "cookie", "name": "c", "default": "t={{tok}}"},
    "header default": {"type": "header", "name": "h", "default": {"a": ["{{tok}}"]}},
    "query url": {"type": "query", "name": "x", "url": "https://x.example/?x={{tok}}"},
    "lookup input": {"type": "lookup", "input": "{{tok}}", "table": {"a": "b"}},
    "lookup table": {"type": "lookup", "input": "{{event.event_name}}",
                     "table": {"Purchase": "{{tok}}"}},
    "lookup default": {"type": "lookup", "input": "{{event.event_name}}",
                       "table": {"a": "b"}, "default": "{{tok}}"},
    "regex input": {"type": "regex", "input": "{{tok}}", "pattern": "(.+)"},
    "regex default": {"type": "regex", "input": "{{event.event_name}}", "pattern": "(zz)",
                      "default": "{{tok}}"},
    "url input": {"type": "url", "part": "host", "input": "https://{{tok}}.example/"},
    "url default": {"type": "url", "part": "host", "default": "{{tok}}"},
}


def variables(composition: str) -> dict[str, Any]:
    # one more hop: ``w`` uses ``v`` through a default, to show transitivity
    return {
        "tok": TOK,
        "v": COMPOSITIONS[composition],
        "w": {"type": "query", "name": "y", "default": "{{v}}"},
    }


@pytest.mark.parametrize("composition", sorted(COMPOSITIONS))
@pytest.mark.parametrize("name", ["v", "w"])
def test_a_secret_by_composition_may_not_be_sent_to_meta(
    tmp_path: Path, composition: str, name: str
) -> None:
    text = config_problems(tmp_path, {
        "variables": variables(composition),
        "tags": [meta_tag(custom_data={"leak": f"{{{{{name}}}}}"},
                          user_data={"external_id": f"id-{{{{{name}}}}}"},
                          event_name=f"{{{{{name}}}}}")],
    })
    assert "$.tags[0].custom_data.leak: a secret may not be sent to Meta" in text
    assert "$.tags[0].user_data.external_id: a secret may not be sent to Meta" in text
    assert "$.tags[0].event_name: a secret may not be sent to Meta" in text
    assert ENVIRON["CRM_TOKEN"] not in text


@pytest.mark.parametrize("composition", sorted(COMPOSITIONS))
def test_a_secret_by_composition_may_not_be_a_condition(tmp_path: Path, composition: str) -> None:
    text = config_problems(tmp_path, {
        "variables": variables(composition),
        "tags": [http_tag(conditions=[{"var": "w", "op": "exists"}])],
    })
    assert "$.tags[0].conditions[0].var: variable 'w' is a secret" in text


@pytest.mark.parametrize("composition", sorted(COMPOSITIONS))
def test_a_secret_by_composition_may_not_augment_event_data(
    tmp_path: Path, composition: str
) -> None:
    text = config_problems(tmp_path, {
        "variables": variables(composition),
        "tags": [http_tag()],
        "transformations": [{"name": "add", "type": "augment",
                             "parameters": {"custom_data.x": "{{w}}"}}],
    })
    assert "$.transformations[0].parameters.custom_data.x: a secret may not be copied" in text


def test_a_secret_default_still_works_in_an_http_tag(tmp_path: Path) -> None:
    container = compile_container(tmp_path, {
        "variables": variables("query default"),
        "tags": [http_tag(headers={"Authorization": "Bearer {{w}}"})],
    })
    assert container.variables["w"].secret
    assert not container.variables["tok"].uses_data
