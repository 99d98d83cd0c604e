"""tagserver.ga4.event_data: hit parameters → sGTM common event data."""

from __future__ import annotations

from tagserver.ga4.event_data import build_event_data, parse_full_version_list


def data_of(*pairs: tuple[str, str], **context: str) -> dict[str, object]:
    data, problems = build_event_data(list(pairs), **context)  # type: ignore[arg-type]
    assert problems == []
    return data


def test_common_event_data_names() -> None:
    data = data_of(
        ("v", "2"), ("tid", "G-1"), ("gtm", "45je"), ("_p", "1746817938582"), ("cid", "1.2"),
        ("uid", "u-1"), ("ul", "en-us"), ("sr", "1x2"), ("_s", "3"), ("sid", "1746"),
        ("sct", "41"), ("seg", "1"), ("dl", "https://a/"), ("dr", "https://b/"), ("dt", "T"),
        ("en", "purchase"), ("_et", "12397"), ("cu", "EUR"), ("tfd", "565"),
        ip_override="2001:db8::1", user_agent="UA/1",
    )
    assert data == {
        "x-ga-protocol_version": "2",
        "x-ga-measurement_id": "G-1",
        "x-ga-gtm_version": "45je",
        "x-ga-page_id": 1746817938582,
        "client_id": "1.2",
        "user_id": "u-1",
        "language": "en-us",
        "screen_resolution": "1x2",
        "x-ga-request_count": 3,
        "ga_session_id": "1746",
        "ga_session_number": 41,
        "x-ga-mp2-seg": "1",
        "page_location": "https://a/",
        "page_referrer": "https://b/",
        "page_title": "T",
        "event_name": "purchase",
        "engagement_time_msec": 12397,
        "currency": "EUR",
        "x-ga-tfd": 565,
        "ip_override": "2001:db8::1",
        "user_agent": "UA/1",
    }


def test_ep_strings_and_epn_numbers() -> None:
    data = data_of(("ep.a", "1"), ("epn.b", "1"), ("epn.value", "30.03"), ("ep.debug_mode", "true"))
    assert data == {"a": "1", "b": 1, "value": 30.03, "debug_mode": "true"}


def test_an_epn_that_is_not_a_number_is_left_out_and_reported() -> None:
    data, problems = build_event_data([("epn.value", "12,50"), ("ep.x", "ok")])
    assert data == {"x": "ok"}
    assert problems == ["epn.value: '12,50' is not a number"]


def test_user_properties() -> None:
    data = data_of(("up.level", "gold"), ("upn.visits", "7"))
    assert data == {"x-ga-mp2-user_properties": {"level": "gold", "visits": 7}}


def test_protocol_fields_system_properties_and_unknown_parameters() -> None:
    data = data_of(
        ("gcs", "G111"), ("gcd", "13r3"), ("npa", "0"), ("dma", "1"), ("dma_cps", "sy"),
        ("ecid", "9"), ("are", "1"), ("pscdl", "noapi"), ("_ee", "1"), ("_fv", "1"),
        ("_dbg", "1"), ("sst.etld", "google.de"), ("tag_exp", "1~2"), ("frm", "0"),
        ("ur", "BR-SP"),
    )
    assert data == {
        "x-ga-gcs": "G111", "x-ga-gcd": "13r3", "x-ga-npa": "0", "x-ga-dma": "1",
        "x-ga-dma_cps": "sy", "x-ga-ecid": "9", "x-ga-are": "1", "x-ga-pscdl": "noapi",
        "x-ga-system_properties": {"ee": "1", "fv": "1", "dbg": "1"},
        "x-sst-system_properties": {"etld": "google.de"},
        "x-ga-mp2-tag_exp": "1~2", "x-ga-mp2-frm": "0",
        "x-ga-ur": "BR-SP", "event_location": {"country": "BR", "region": "SP"},
    }


def test_transport_flag_and_client_supplied_ip_never_become_event_data() -> None:
    data = data_of(("richsstsse", ""), ("_uip", "6.6.6.6"), ip_override="203.0.113.9")
    assert data == {"ip_override": "203.0.113.9"}


def test_client_hints() -> None:
    data = data_of(
        ("uaa", "arm"), ("uab", "64"),
        ("uafvl", "Chromium;136.0.7103.114|Google%20Chrome;136.0.7103.114|Not.A%2FBrand;99.0.0.0"),
        ("uamb", "0"), ("uam", ""), ("uap", "macOS"), ("uapv", "15.5.0"), ("uaw", "1"),
    )
    assert data == {"client_hints": {
        "architecture": "arm", "bitness": "64",
        "full_version_list": [
            {"brand": "Chromium", "version": "136.0.7103.114"},
            {"brand": "Google Chrome", "version": "136.0.7103.114"},
            {"brand": "Not.A/Brand", "version": "99.0.0.0"},
        ],
        "mobile": False, "model": "", "platform": "macOS", "platform_version": "15.5.0",
        "wow64": True,
    }}


def test_full_version_list_skips_garbage() -> None:
    assert parse_full_version_list("nothing|;1|A;2") == [{"brand": "A", "version": "2"}]


def test_items_from_pr_parameters() -> None:
    data = data_of(("pr2", "idB~qt2"), ("pr1", "idA~pr10.01"))
    assert data == {"items": [{"item_id": "A", "price": 10.01}, {"item_id": "B", "quantity": 2}]}


def test_user_data_object_from_ep_user_data() -> None:
    data = data_of(
        ("ep.user_data.email_address", "Jane@Example.com"),
        ("ep.user_data.address.first_name", "Jane"),
        ("ep.user_data.address.city", "Paris"),
        ("epn.user_data.address.postal_code", "75001"),
    )
    assert data == {"user_data": {
        "email_address": "Jane@Example.com",
        "address": {"first_name": "Jane", "city": "Paris", "postal_code": 75001},
    }}


def test_conflicting_user_data_paths_are_reported() -> None:
    data, problems = build_event_data(
        [("ep.user_data.address", "x"), ("ep.user_data.address.city", "Paris"),
         ("ep.user_data.a..b", "1")]
    )
    assert data == {"user_data": {"address": "x"}}
    assert len(problems) == 2


def test_the_first_of_a_repeated_parameter_wins() -> None:
    assert data_of(("en", "a"), ("en", "b")) == {"event_name": "a"}


def test_empty_ep_names_are_reported() -> None:
    data, problems = build_event_data([("ep.", "x"), ("epn.", "1")])
    assert data == {} and len(problems) == 2
