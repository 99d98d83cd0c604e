"""tagserver.tags.meta: the Pixel command and the Conversions API event of one event."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tagserver.consent import Consent
from tagserver.container.loader import Container, ContainerTag
from tagserver.container.runtime import run_container
from tagserver.container.scope import Scope
from tagserver.container.triggers import Trigger, event_names
from tagserver.event import Event
from tagserver.secret import Secret
from tagserver.tags import TagResult
from tagserver.tags.meta import MetaDestination, MetaTag

NOW = 1_760_000_000.0
PIXEL = "1234567890"
TOKEN = "EAAG-unit-test-token"
FBP = "fb.1.1759999000000.1234567890"
FBC = "fb.1.1759999000000.IwAR2F4-Ab_cD3fG"
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
PAGE = "https://www.shop.example/thanks?order=42&fbclid=IwAR2F4-Ab_cD3fG"

HASHED_KEYS = {"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def tag(**overrides: Any) -> MetaTag:
    return MetaTag(name="meta", pixel_id=PIXEL, access_token=Secret(TOKEN), **overrides)


def make_event(**overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "event_name": "Purchase",
        "event_id": "evt-000001",
        "event_time": int(NOW) - 5,
        "received_at": NOW,
        "event_source_url": PAGE,
        "referrer_url": "https://www.shop.example/checkout",
        "custom_data": {"value": 29.9, "currency": "EUR"},
        "user_data": {"em": " Jane@Example.com ", "fn": "Jane", "ph": "+33 6 12 34 56 78"},
        "client_ip": "2001:db8::1",
        "user_agent": UA,
        "fbp": FBP,
        "fbc": FBC,
    }
    fields.update(overrides)
    return Event(**fields)


def build(meta_tag: MetaTag, event: Event, *, now: float = NOW) -> TagResult:
    return meta_tag.build(Scope.from_event(event), default_country=None, now=now)


def entry(meta_tag: MetaTag, *, events: list[str] | None = None) -> ContainerTag:
    """The tag in a container, with the meta type's default consent (ad_storage)."""
    triggers = (Trigger("t", event_names(events), None),) if events is not None else ()
    return ContainerTag(
        name=meta_tag.name,
        type="meta",
        tag=meta_tag,
        triggers=triggers,
        require_consent=MetaTag.default_consent,
    )


def fires(container_tag: ContainerTag, event: Event) -> bool:
    return container_tag.fires(Scope.from_event(event), event_key(event.event_name))


def event_key(name: str) -> str:
    from tagserver.meta.events import meta_event_name

    return meta_event_name(name)


def only_capi(result: TagResult) -> dict[str, Any]:
    assert len(result.outbound) == 1, result
    return dict(result.outbound[0].payload)


class _NoReferences:
    """A compile context for configs without templates: any problem fails the test."""

    def problem(self, path: str, message: str, hint: str = "") -> None:
        raise AssertionError(f"{path}: {message}")

    def variable(self, name: str, *, path: str) -> None:
        raise AssertionError(f"{path}: unexpected variable {name}")


NO_REFERENCES = _NoReferences()


def reasons(result: TagResult) -> list[str]:
    return [reason for reason, _ in result.drops]


# ---------------------------------------------------------------------------------------------
# browser command


def test_fbq_command_for_a_standard_event() -> None:
    result = build(tag(), make_event())
    assert result.commands == [
        {
            "type": "fbq",
            "args": [
                "trackSingle",
                PIXEL,
                "Purchase",
                {"value": 29.9, "currency": "EUR"},
                {"eventID": "evt-000001"},
            ],
        }
    ]
    assert result.drops == []


def test_custom_event_uses_track_single_custom() -> None:
    result = build(tag(), make_event(event_name="NewsletterSignup", custom_data={"list": "w"}))
    assert result.commands[0]["args"][0] == "trackSingleCustom"
    assert result.commands[0]["args"][2] == "NewsletterSignup"
    assert only_capi(result)["event_name"] == "NewsletterSignup"


def test_custom_event_name_keeps_its_case() -> None:
    result = build(tag(), make_event(event_name="purchase_completed", custom_data={}))
    assert result.commands[0]["args"][:3] == ["trackSingleCustom", PIXEL, "purchase_completed"]


@pytest.mark.parametrize(
    ("ga4", "meta"),
    [("purchase", "Purchase"), ("page_view", "PageView"), ("add_to_cart", "AddToCart")],
)
def test_ga4_name_maps_to_the_meta_name_on_both_sides(ga4: str, meta: str) -> None:
    result = build(tag(), make_event(event_name=ga4))
    assert result.commands[0]["args"][:3] == ["trackSingle", PIXEL, meta]
    assert only_capi(result)["event_name"] == meta


def test_browser_and_server_share_event_id_and_name() -> None:
    result = build(tag(), make_event(event_id="000001"))
    command_args = result.commands[0]["args"]
    capi = only_capi(result)
    assert command_args[4] == {"eventID": "000001"}
    assert capi["event_id"] == "000001"
    assert command_args[2] == capi["event_name"]


def test_img_mode_gives_an_image_pixel_url() -> None:
    result = build(tag(browser_mode="img"), make_event(event_id="evt-1"))
    (command,) = result.commands
    assert command["type"] == "img"
    parts = urlsplit(command["src"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://www.facebook.com/tr"
    query = parse_qs(parts.query)
    assert query["id"] == [PIXEL]
    assert query["ev"] == ["Purchase"]
    assert query["eid"] == ["evt-1"]
    assert query["cd[currency]"] == ["EUR"]
    assert query["cd[value]"] == ["29.9"]
    assert TOKEN not in command["src"]
    assert len(result.outbound) == 1


def test_none_mode_gives_no_command_but_the_server_event() -> None:
    result = build(tag(browser_mode="none"), make_event())
    assert result.commands == []
    assert only_capi(result)["event_id"] == "evt-000001"


# ---------------------------------------------------------------------------------------------
# the Conversions API event


def test_capi_event_fields() -> None:
    result = build(tag(), make_event())
    (outbound,) = result.outbound
    assert outbound.destination == MetaDestination(PIXEL, "v25.0", Secret(TOKEN), None)
    capi = dict(outbound.payload)
    assert capi["event_name"] == "Purchase"
    assert capi["event_time"] == int(NOW) - 5
    assert capi["event_id"] == "evt-000001"
    assert capi["action_source"] == "website"
    assert capi["event_source_url"] == PAGE  # query string kept
    assert capi["referrer_url"] == "https://www.shop.example/checkout"
    assert capi["custom_data"] == {"value": 29.9, "currency": "EUR"}
    user = capi["user_data"]
    assert user["client_ip_address"] == "2001:db8::1"
    assert user["client_user_agent"] == UA
    assert user["fbp"] == FBP
    assert user["fbc"] == FBC
    assert user["em"] == sha("jane@example.com")
    assert user["fn"] == sha("jane")
    assert user["ph"] == sha("33612345678")
    assert TOKEN not in repr(capi)


def test_capi_event_without_ip_or_cookies_leaves_them_out() -> None:
    result = build(tag(), make_event(client_ip=None, fbp=None, fbc=None, user_data={}))
    assert only_capi(result)["user_data"] == {"client_user_agent": UA}


@pytest.mark.parametrize(
    ("changes", "missing"),
    [
        ({"user_agent": None}, "client_user_agent"),
        ({"event_source_url": None}, "event_source_url"),
    ],
)
def test_website_event_without_a_required_field_is_held_back(
    changes: dict[str, object], missing: str
) -> None:
    result = build(tag(), make_event(**changes))
    assert result.outbound == []
    assert len(result.commands) == 1  # the browser still fires
    ((reason, detail),) = result.drops
    assert reason == "invalid_event"
    assert missing in detail


def test_ad_user_data_denied_sends_no_hashed_keys_but_keeps_the_rest() -> None:
    event = make_event(
        consent=Consent(ad_user_data=False),
        user_data={"em": "jane@example.com", "ph": "+33612345678", "external_id": "u1"},
    )
    result = build(tag(), event)
    user = only_capi(result)["user_data"]
    assert not HASHED_KEYS & set(user), user
    assert user["fbp"] == FBP
    assert user["fbc"] == FBC
    assert user["client_ip_address"] == "2001:db8::1"
    assert user["client_user_agent"] == UA


def test_ad_storage_denied_does_not_fire() -> None:
    event = make_event(consent=Consent(ad_storage=False), fbp=None, fbc=None)
    meta_entry = entry(tag())
    assert fires(meta_entry, event) is False
    result = run_container(
        Container(tags=(meta_entry,), version="test"), event, default_country=None, now=NOW
    )
    assert result.fired == []
    assert result.commands == []
    assert result.outbound == []


def test_granted_event_fires_through_the_container() -> None:
    result = run_container(
        Container(tags=(entry(tag()),), version="test"),
        make_event(),
        default_country=None,
        now=NOW,
    )
    assert result.fired == ["meta"]
    assert len(result.commands) == 1
    assert len(result.outbound) == 1


def test_events_filter_matches_after_the_ga4_mapping() -> None:
    meta_entry = entry(tag(), events=["Purchase"])
    assert fires(meta_entry, make_event(event_name="purchase")) is True
    assert fires(meta_entry, make_event(event_name="Purchase")) is True
    assert fires(meta_entry, make_event(event_name="PageView")) is False


def test_from_config_reads_the_environment() -> None:
    meta_tag = MetaTag.from_config(
        {
            "name": "m",
            "type": "meta",
            "pixel_id": {"env": "PIXEL"},
            "access_token": {"env": "TOKEN"},
            "events": ["purchase", "Lead"],
            "browser_mode": "img",
        },
        environ={"PIXEL": " 999888777 ", "TOKEN": "EAAG-env-token-xyz"},
        ctx=NO_REFERENCES,
        path="$.tags[0]",
    )
    assert meta_tag.pixel_id == "999888777"
    assert meta_tag.access_token.reveal() == "EAAG-env-token-xyz"
    assert meta_tag.browser_mode == "img"
    assert "EAAG-env-token-xyz" not in repr(meta_tag)


# ---------------------------------------------------------------------------------------------
# what Meta would refuse


@pytest.mark.parametrize(
    "custom_data",
    [{"value": 29.9}, {"currency": "EUR"}, {}, {"value": 10, "currency": "not-a-code"}],
)
def test_purchase_without_value_or_currency_is_held_back(custom_data: dict[str, Any]) -> None:
    result = build(tag(), make_event(custom_data=custom_data))
    assert len(result.commands) == 1
    assert result.commands[0]["args"][2] == "Purchase"
    assert result.outbound == []
    assert "missing_purchase_data" in reasons(result)


def test_purchase_currency_is_never_invented() -> None:
    result = build(tag(), make_event(custom_data={"value": 29.9}))
    assert "currency" not in result.commands[0]["args"][3]


def test_event_older_than_7_days_is_dropped_as_too_old() -> None:
    result = build(tag(), make_event(event_time=int(NOW) - 8 * 24 * 3600))
    assert result.outbound == []
    assert reasons(result) == ["too_old"]


def test_event_6_days_old_is_still_sent() -> None:
    result = build(tag(), make_event(event_time=int(NOW) - 6 * 24 * 3600))
    assert only_capi(result)["event_time"] == int(NOW) - 6 * 24 * 3600
    assert result.drops == []


def test_content_ids_are_strings_copied_exactly() -> None:
    result = build(
        tag(),
        make_event(event_name="ViewContent", custom_data={"content_ids": [4638, "04639", "SKU-a"]}),
    )
    capi = only_capi(result)
    assert capi["custom_data"]["content_ids"] == ["4638", "04639", "SKU-a"]
    assert result.commands[0]["args"][3]["content_ids"] == ["4638", "04639", "SKU-a"]


def test_content_ids_strings_are_never_retyped() -> None:
    result = build(
        tag(), make_event(event_name="ViewContent", custom_data={"content_ids": ["4638", "04639"]})
    )
    assert only_capi(result)["custom_data"]["content_ids"] == ["4638", "04639"]


def test_value_string_becomes_a_number() -> None:
    result = build(tag(), make_event(custom_data={"value": "29.90", "currency": "eur"}))
    custom = only_capi(result)["custom_data"]
    assert custom["value"] == 29.9
    assert isinstance(custom["value"], float)
    assert custom["currency"] == "EUR"
    assert result.commands[0]["args"][3] == {"value": 29.9, "currency": "EUR"}


def test_locale_formatted_value_is_dropped_as_invalid_field() -> None:
    result = build(
        tag(),
        make_event(event_name="AddToCart", custom_data={"value": "1.234,56", "currency": "EUR"}),
    )
    custom = only_capi(result)["custom_data"]
    assert "value" not in custom
    assert custom["currency"] == "EUR"
    assert reasons(result) == ["invalid_field"]
    assert "custom_data.value" in result.drops[0][1]
    assert "value" not in result.commands[0]["args"][3]


def test_custom_data_of_the_event_is_not_mutated() -> None:
    custom = {"value": "29.90", "currency": "eur", "contents": [{"id": "1", "quantity": 2}]}
    event = make_event(custom_data=custom)
    build(tag(), event)
    assert custom == {"value": "29.90", "currency": "eur", "contents": [{"id": "1", "quantity": 2}]}
    assert dataclasses.asdict(event)["custom_data"] == custom


def test_value_locale_of_the_tag_converts_locale_formatted_values() -> None:
    from tagserver.tags.meta import MetaTag

    plain = MetaTag(name="m", pixel_id="12345", access_token=Secret("t" * 20))
    german = MetaTag(name="m", pixel_id="12345", access_token=Secret("t" * 20), value_locale="de")
    event = make_event(custom_data={"value": "1.234,56", "currency": "EUR"})
    refused = build(plain, event)
    assert refused.outbound == []  # a Purchase without a usable value is held back
    reasons = {reason: detail for reason, detail in refused.drops}
    assert reasons["invalid_field"].startswith("custom_data.value: not a number")
    assert "missing_purchase_data" in reasons
    converted = only_capi(build(german, event))
    assert converted["custom_data"]["value"] == 1234.56
