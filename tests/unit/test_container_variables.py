"""Variables (every kind, with defaults) and templates, read through an http tag's body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tagserver.container.loader import container_schema
from tagserver.container.values import as_text
from tagserver.container.variables import URL_PARTS
from tests.containers import (
    ENVIRON,
    compile_container,
    config_problems,
    http_tag,
    make_scope,
    run,
)

PAGE = "https://WWW.Shop.example:8443/de/p/A-1234?utm_source=Facebook&empty=&q=a%20b#reviews"


def body_of(
    tmp_path: Path, variables: dict[str, Any], body: Any, **scope: Any
) -> Any:
    """The JSON body the http tag builds with ``variables`` for one event."""
    container = compile_container(
        tmp_path, {"variables": variables, "tags": [http_tag(body=body)]}
    )
    result = run(container, make_scope(**scope))
    assert result.fired == ["hook"], result
    (outbound,) = result.outbound
    return outbound.payload["body"]


def value_of(tmp_path: Path, definition: dict[str, Any], **scope: Any) -> Any:
    body = body_of(tmp_path, {"v": definition}, {"v": "{{v}}"}, **scope)
    return body.get("v")


def test_every_variable_kind_is_tested() -> None:
    kinds = container_schema()["$defs"]["variable"]["properties"]["type"]["enum"]
    tested = {name.removeprefix("test_").split("_variable")[0] for name in globals()
              if name.startswith("test_") and "_variable" in name}
    assert set(kinds) <= tested, set(kinds) - tested


def test_event_data_variable(tmp_path: Path) -> None:
    data = {"custom_data": {"order_id": "1001", "contents": [{"id": "x"}]}}
    assert value_of(tmp_path, {"type": "event_data", "path": "custom_data.order_id"},
                    data=data) == "1001"
    assert value_of(tmp_path, {"type": "event_data", "path": "custom_data.contents.0.id"},
                    data=data) == "x"
    assert value_of(tmp_path, {"type": "event_data", "path": "custom_data.nope",
                               "default": "none"}, data=data) == "none"
    assert value_of(tmp_path, {"type": "event_data", "path": "custom_data.nope"},
                    data=data) is None


def test_cookie_variable(tmp_path: Path) -> None:
    definition = {"type": "cookie", "name": "_ga", "default": "no-ga"}
    assert value_of(tmp_path, definition, cookies={"_ga": "GA1.1.123.456"}) == "GA1.1.123.456"
    assert value_of(tmp_path, definition) == "no-ga"


def test_header_variable(tmp_path: Path) -> None:
    definition = {"type": "header", "name": "CF-IPCountry", "default": "XX"}
    assert value_of(tmp_path, definition, headers={"cf-ipcountry": "DE"}) == "DE"
    assert value_of(tmp_path, definition) == "XX"


def test_query_variable(tmp_path: Path) -> None:
    data = {"page_location": PAGE, "page_referrer": "https://www.google.com/?q=shoes"}
    assert value_of(tmp_path, {"type": "query", "name": "utm_source"}, data=data) == "Facebook"
    assert value_of(tmp_path, {"type": "query", "name": "q"}, data=data) == "a b"
    # an empty parameter counts as missing: the default applies
    assert value_of(tmp_path, {"type": "query", "name": "empty", "default": "d"}, data=data) == "d"
    assert value_of(tmp_path, {"type": "query", "name": "gclid", "default": "none"},
                    data=data) == "none"
    referrer = {"type": "query", "name": "q", "url": "{{event.page_referrer}}"}
    assert value_of(tmp_path, referrer, data=data) == "shoes"


def test_constant_variable(tmp_path: Path) -> None:
    assert value_of(tmp_path, {"type": "constant", "value": {"shop": "de", "n": 2}}) == {
        "shop": "de",
        "n": 2,
    }


def test_secret_variable(tmp_path: Path) -> None:
    container = compile_container(
        tmp_path,
        {
            "variables": {"token": {"type": "secret", "env": "CRM_TOKEN"}},
            "tags": [http_tag(headers={"Authorization": "Bearer {{token}}"})],
        },
    )
    variable = container.variables["token"]
    assert variable.secret
    assert ENVIRON["CRM_TOKEN"] not in repr(container)
    (outbound,) = run(container, make_scope()).outbound
    assert outbound.payload["headers"]["Authorization"] == f"Bearer {ENVIRON['CRM_TOKEN']}"


def test_lookup_variable(tmp_path: Path) -> None:
    definition = {
        "type": "lookup",
        "input": "{{event.event_name}}",
        "table": {"checkout_completed": "Purchase", "signup": "{{event.custom_data.plan}}"},
        "default": "Other",
    }
    assert value_of(tmp_path, definition, data={"event_name": "checkout_completed"}) == "Purchase"
    assert value_of(tmp_path, definition, data={"event_name": "signup",
                                                "custom_data": {"plan": "pro"}}) == "pro"
    assert value_of(tmp_path, definition, data={"event_name": "Signup"}) == "Other"
    folded = {**definition, "ignore_case": True}
    assert value_of(tmp_path, folded, data={"event_name": "CHECKOUT_completed"}) == "Purchase"


def test_regex_variable(tmp_path: Path) -> None:
    data = {"page_location": PAGE}
    sku = {"type": "regex", "input": "{{event.page_location}}", "pattern": "/p/([A-Z]-[0-9]+)"}
    assert value_of(tmp_path, sku, data=data) == "A-1234"
    named = {**sku, "pattern": "/(?P<market>[a-z]{2})/", "group": "market"}
    assert value_of(tmp_path, named, data=data) == "de"
    whole = {**sku, "pattern": "A-[0-9]+"}
    assert value_of(tmp_path, whole, data=data) == "A-1234"  # no group: the whole match
    folded = {**sku, "pattern": "utm_source=(facebook)", "ignore_case": True}
    assert value_of(tmp_path, folded, data=data) == "Facebook"
    missing = {**sku, "pattern": "/x/([0-9]+)", "default": "none"}
    assert value_of(tmp_path, missing, data=data) == "none"


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("protocol", "https"),
        ("host", "www.shop.example"),
        ("port", "8443"),
        ("path", "/de/p/A-1234"),
        ("query", "utm_source=Facebook&empty=&q=a%20b"),
        ("fragment", "reviews"),
        ("origin", "https://WWW.Shop.example:8443"),
    ],
)
def test_url_variable(tmp_path: Path, part: str, expected: str) -> None:
    assert value_of(tmp_path, {"type": "url", "part": part}, data={"page_location": PAGE}) == (
        expected
    )


def test_url_variable_parts_and_defaults(tmp_path: Path) -> None:
    assert set(URL_PARTS) == set(
        container_schema()["$defs"]["variable"]["allOf"][8]["then"]["properties"]["part"]["enum"]
    )
    referrer = {"type": "url", "part": "host", "input": "{{event.page_referrer}}",
                "default": "(none)"}
    assert value_of(tmp_path, referrer, data={"page_referrer": "https://m.facebook.com/"}) == (
        "m.facebook.com"
    )
    assert value_of(tmp_path, referrer) == "(none)"
    assert value_of(tmp_path, {"type": "url", "part": "port"},
                    data={"page_location": "https://x.example:99999/"}) is None


def test_variables_may_use_variables(tmp_path: Path) -> None:
    variables = {
        "source": {"type": "query", "name": "utm_source", "default": "(direct)"},
        "channel": {"type": "lookup", "input": "{{source}}", "ignore_case": True,
                    "table": {"facebook": "paid_social"}, "default": "other"},
    }
    body = body_of(tmp_path, variables, {"channel": "{{channel}}"},
                   data={"page_location": PAGE})
    assert body == {"channel": "paid_social"}
    body = body_of(tmp_path, variables, {"channel": "{{channel}}", "s": "{{source}}"},
                   data={"page_location": "https://shop.example/"})
    assert body == {"channel": "other", "s": "(direct)"}


# ---------------------------------------------------------------------------------------------
# templates


def test_exact_reference_keeps_the_json_type_and_mixed_text_renders(tmp_path: Path) -> None:
    body = body_of(
        tmp_path,
        {},
        {
            "value": "{{event.value}}",
            "items": "{{event.items}}",
            "text": "{{event.value}} {{event.currency}} for {{event.event_name}}",
            "missing": "{{event.nothing}}",
            "in_text": "[{{event.nothing}}]",
            "literal": 5,
            "list": ["{{event.value}}", "x"],
        },
        data={"value": 29.0, "currency": "EUR", "items": [{"item_id": "1"}]},
    )
    assert body == {
        "value": 29.0,
        "items": [{"item_id": "1"}],
        "text": "29 EUR for Purchase",
        "in_text": "[]",
        "literal": 5,
        "list": [29.0, "x"],
    }


def test_whole_event_data_reference(tmp_path: Path) -> None:
    body = body_of(tmp_path, {}, "{{ event }}", data={"custom_data": {"a": 1}})
    assert body["event_name"] == "Purchase"
    assert body["custom_data"] == {"a": 1}


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, None), ("a", "a"), (True, "true"), (3, "3"), (2.0, "2"), (2.5, "2.5"),
     ([1, "a"], '[1,"a"]'), ({"k": "é"}, '{"k":"é"}')],
)
def test_as_text(value: Any, text: str | None) -> None:
    assert as_text(value) == text


def test_an_env_key_in_a_webhook_body_is_data_not_a_secret(tmp_path: Path) -> None:
    assert body_of(tmp_path, {}, {"env": "production"}) == {"env": "production"}


def chain(length: int, *, reverse: bool = False) -> dict[str, Any]:
    """``v0`` uses ``v1`` ... uses ``v{length-1}``, which reads event data."""
    variables: dict[str, Any] = {
        f"v{i}": {"type": "lookup", "input": f"{{{{v{i + 1}}}}}", "table": {"x": "y"},
                  "default": f"{{{{v{i + 1}}}}}"}
        for i in range(length - 1)
    }
    variables[f"v{length - 1}"] = {"type": "event_data", "path": "custom_data.end"}
    return dict(reversed(variables.items())) if reverse else variables


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_a_chain_of_variables_deeper_than_32_is_refused(tmp_path: Path, reverse: bool) -> None:
    text = config_problems(tmp_path, {"variables": chain(300, reverse=reverse),
                                      "tags": [http_tag(body={"v": "{{v0}}"})]})
    assert text.count("a chain of") == 1, text  # reported once, where it starts
    assert ("$.variables.v0: a chain of 300 variables each using the next: "
            "v0 -> v1 -> v2 -> ... -> v298 -> v299 (at most 32)") in text
    assert "a chain of 33 variables" in config_problems(
        tmp_path, {"variables": chain(33), "tags": [http_tag(body={"v": "{{v0}}"})]})


def test_a_chain_of_32_variables_resolves(tmp_path: Path) -> None:
    body = body_of(tmp_path, chain(32), {"v": "{{v0}}"}, data={"custom_data": {"end": "deep"}})
    assert body == {"v": "deep"}
