"""The GA4 settings: TAGSERVER_GA4_CLIENT_ID and TAGSERVER_GA4_EVENT_ID_PARAM."""

from __future__ import annotations

import pytest

from tagserver.exceptions import ConfigError
from tagserver.settings import load_settings


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.ga4_client_id == "js"
    assert settings.ga4_event_id_param == "event_id"


def test_values_are_read() -> None:
    settings = load_settings(
        {"TAGSERVER_GA4_CLIENT_ID": "Server", "TAGSERVER_GA4_EVENT_ID_PARAM": "ep.meta_eid"}
    )
    assert settings.ga4_client_id == "server"
    assert settings.ga4_event_id_param == "meta_eid"


def test_bad_values_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            {"TAGSERVER_GA4_CLIENT_ID": "cookie", "TAGSERVER_GA4_EVENT_ID_PARAM": "a b"}
        )
    assert [issue.path for issue in info.value.issues] == [
        "TAGSERVER_GA4_CLIENT_ID",
        "TAGSERVER_GA4_EVENT_ID_PARAM",
    ]
    assert "js or server" in str(info.value)
