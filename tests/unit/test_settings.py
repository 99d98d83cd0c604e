"""tagserver.settings: TAGSERVER_* variables, validated together."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tagserver.exceptions import ConfigError
from tagserver.secret import Secret
from tagserver.settings import DEV_SECRET_KEY, MAX_COOKIE_AGE_S, Settings, load_settings

GOOD_KEY = "s3cr3t-signing-key-0123456789abcdef"


def config_error(environ: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(environ)
    return info.value


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.secret_keys == (Secret(DEV_SECRET_KEY),)
    assert settings.uses_dev_key is True
    assert settings.site_domains == ()
    assert settings.allowed_origins == ()
    assert settings.trusted_proxies == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert settings.meta_graph_url == "https://graph.facebook.com"
    assert settings.ga4_url == "https://region1.google-analytics.com"
    assert settings.collect_path == "/e"
    assert settings.script_path == "/t.js"
    assert settings.log_level == "info"
    assert settings.dry_run is False
    assert settings.tags_dir == Path("tags")
    assert settings.cookie_max_age_s == 90 * 24 * 3600
    assert settings.default_country is None


def test_blank_values_are_the_defaults() -> None:
    assert load_settings({"TAGSERVER_DRY_RUN": "", "TAGSERVER_LOG_LEVEL": "  "}) == Settings()


def test_values_are_read() -> None:
    settings = load_settings(
        {
            "TAGSERVER_SECRET_KEY": f"{GOOD_KEY}, older-key-0123456789abcdef",
            "TAGSERVER_SITE_DOMAINS": "WWW.Shop.Example., shop.example",
            "TAGSERVER_ALLOWED_ORIGINS": "https://WWW.Shop.Example/, http://localhost:8080",
            "TAGSERVER_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7, ::1",
            "TAGSERVER_META_GRAPH_URL": "http://127.0.0.1:9999/",
            "TAGSERVER_COLLECT_PATH": "/metrics/e/",
            "TAGSERVER_LOG_LEVEL": "DEBUG",
            "TAGSERVER_DRY_RUN": "yes",
            "TAGSERVER_COOKIE_MAX_AGE": "86400",
            "TAGSERVER_RETRY_BASE_DELAY": "0.25",
            "TAGSERVER_DEFAULT_COUNTRY": "fr",
            "META_PIXEL_ID": "1234567890",
        }
    )
    assert [k.reveal() for k in settings.secret_keys] == [
        GOOD_KEY,
        "older-key-0123456789abcdef",
    ]
    assert settings.uses_dev_key is False
    assert settings.site_domains == ("www.shop.example", "shop.example")
    assert settings.allowed_origins == ("https://www.shop.example", "http://localhost:8080")
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("::1/128"),
    )
    assert settings.meta_graph_url == "http://127.0.0.1:9999"
    assert settings.collect_path == "/metrics/e"
    assert settings.log_level == "debug"
    assert settings.dry_run is True
    assert settings.cookie_max_age_s == 86400
    assert settings.retry_base_delay_s == 0.25
    assert settings.default_country == "FR"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("ON", True), ("0", False), ("False", False), ("no", False)],
)
def test_booleans(raw: str, expected: bool) -> None:
    assert load_settings({"TAGSERVER_DRY_RUN": raw}).dry_run is expected


def test_overrides_win_over_the_environment() -> None:
    settings = load_settings({"TAGSERVER_TAGS": "/etc/tags"}, tags_dir=Path("/srv/tags"))
    assert settings.tags_dir == Path("/srv/tags")


# ---------------------------------------------------------------------------------------------
# problems, all at once


def test_every_bad_variable_is_reported_in_one_error() -> None:
    exc = config_error(
        {
            "TAGSERVER_SECRET_KEY": "short",
            "TAGSERVER_SITE_DOMAINS": "shop_example!",
            "TAGSERVER_ALLOWED_ORIGINS": "*",
            "TAGSERVER_TRUSTED_PROXIES": "10.0.0.0/33",
            "TAGSERVER_META_GRAPH_URL": "graph.facebook.com",
            "TAGSERVER_GA4_URL": "https://region1.google-analytics.com/?x=1",
            "TAGSERVER_COLLECT_PATH": "e",
            "TAGSERVER_LOG_LEVEL": "loud",
            "TAGSERVER_DRY_RUN": "maybe",
            "TAGSERVER_DEFAULT_COUNTRY": "France",
            "TAGSERVER_MAX_BODY_BYTES": "-5",
            "TAGSERVER_FLUSH_INTERVAL": "-1.5",
            "TAGSERVER_RETRY_MAX_ATTEMPTS": "three",
        }
    )
    paths = [issue.path for issue in exc.issues]
    assert sorted(paths) == sorted(
        [
            "TAGSERVER_SECRET_KEY",
            "TAGSERVER_SITE_DOMAINS",
            "TAGSERVER_ALLOWED_ORIGINS",
            "TAGSERVER_TRUSTED_PROXIES",
            "TAGSERVER_META_GRAPH_URL",
            "TAGSERVER_GA4_URL",
            "TAGSERVER_COLLECT_PATH",
            "TAGSERVER_LOG_LEVEL",
            "TAGSERVER_DRY_RUN",
            "TAGSERVER_DEFAULT_COUNTRY",
            "TAGSERVER_MAX_BODY_BYTES",
            "TAGSERVER_FLUSH_INTERVAL",
            "TAGSERVER_RETRY_MAX_ATTEMPTS",
        ]
    )
    assert all(issue.where == "environment" for issue in exc.issues)
    text = str(exc)
    for path in paths:
        assert path in text
    # every message says what was expected
    for issue in exc.issues:
        if issue.path != "TAGSERVER_SECRET_KEY":
            assert "expected" in issue.message, issue


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("TAGSERVER_ALLOWED_ORIGINS", "*", id="origin-star"),
        pytest.param("TAGSERVER_ALLOWED_ORIGINS", "null", id="origin-null"),
        pytest.param(
            "TAGSERVER_ALLOWED_ORIGINS", "https://shop.example, *", id="origin-star-later"
        ),
        pytest.param("TAGSERVER_ALLOWED_ORIGINS", "shop.example", id="origin-no-scheme"),
        pytest.param("TAGSERVER_ALLOWED_ORIGINS", "https://shop.example/path", id="origin-path"),
        pytest.param("TAGSERVER_ALLOWED_ORIGINS", "ftp://shop.example", id="origin-ftp"),
        pytest.param("TAGSERVER_TRUSTED_PROXIES", "10.0.0.0/33", id="cidr-bad-prefix"),
        pytest.param("TAGSERVER_TRUSTED_PROXIES", "10.0.0.300", id="cidr-bad-address"),
        pytest.param("TAGSERVER_TRUSTED_PROXIES", "proxy.internal", id="cidr-hostname"),
        pytest.param("TAGSERVER_TRUSTED_PROXIES", "*", id="proxies-star"),
        pytest.param("TAGSERVER_META_GRAPH_URL", "graph.facebook.com", id="url-no-scheme"),
        pytest.param("TAGSERVER_META_GRAPH_URL", "ftp://graph.facebook.com", id="url-ftp"),
        pytest.param("TAGSERVER_META_GRAPH_URL", "https://g.example/?token=x", id="url-query"),
        pytest.param("TAGSERVER_GA4_URL", "https://", id="url-no-host"),
        pytest.param("TAGSERVER_DRY_RUN", "maybe", id="bool"),
        pytest.param("TAGSERVER_DRY_RUN", "2", id="bool-number"),
        pytest.param("TAGSERVER_COOKIE_MAX_AGE", "-1", id="negative-int"),
        pytest.param("TAGSERVER_COOKIE_MAX_AGE", "0", id="zero-int"),
        pytest.param("TAGSERVER_COOKIE_MAX_AGE", "1.5", id="fractional-int"),
        pytest.param("TAGSERVER_DRAIN_TIMEOUT", "-10", id="negative-float"),
        pytest.param("TAGSERVER_OUTBOUND_TIMEOUT", "nan", id="nan"),
        pytest.param("TAGSERVER_OUTBOUND_TIMEOUT", "inf", id="inf"),
        pytest.param("TAGSERVER_SCRIPT_PATH", "/", id="root-path"),
        pytest.param("TAGSERVER_SCRIPT_PATH", "/t.js?x=1", id="path-query"),
    ],
)
def test_bad_variable_is_refused(name: str, value: str) -> None:
    exc = config_error({name: value})
    assert [issue.path for issue in exc.issues] == [name]


def test_allowed_origins_default_to_https_site_domains() -> None:
    settings = load_settings({"TAGSERVER_SITE_DOMAINS": "www.shop.example,shop.example"})
    assert settings.allowed_origins == ("https://www.shop.example", "https://shop.example")


def test_explicit_allowed_origins_replace_the_default() -> None:
    settings = load_settings(
        {
            "TAGSERVER_SITE_DOMAINS": "www.shop.example",
            "TAGSERVER_ALLOWED_ORIGINS": "https://checkout.shop.example",
        }
    )
    assert settings.allowed_origins == ("https://checkout.shop.example",)


def test_cookie_max_age_over_400_days_is_capped() -> None:
    settings = load_settings({"TAGSERVER_COOKIE_MAX_AGE": str(500 * 24 * 3600)})
    assert settings.cookie_max_age_s == 34_560_000
    assert MAX_COOKIE_AGE_S == 34_560_000


def test_cookie_max_age_of_exactly_400_days_is_kept() -> None:
    settings = load_settings({"TAGSERVER_COOKIE_MAX_AGE": "34560000"})
    assert settings.cookie_max_age_s == 34_560_000
    settings = load_settings({"TAGSERVER_COOKIE_MAX_AGE": "34559999"})
    assert settings.cookie_max_age_s == 34_559_999


@pytest.mark.parametrize("keys", ["Zq9!x", "0123456789abcde", f"{GOOD_KEY},T1nyK3y"])
def test_secret_key_shorter_than_16_is_refused(keys: str) -> None:
    exc = config_error({"TAGSERVER_SECRET_KEY": keys})
    assert [issue.path for issue in exc.issues] == ["TAGSERVER_SECRET_KEY"]
    assert "16" in exc.issues[0].message
    for key in keys.split(","):
        assert key not in str(exc), "no key, good or bad, may be printed"


def test_secret_key_of_16_is_accepted() -> None:
    settings = load_settings({"TAGSERVER_SECRET_KEY": "0123456789abcdef"})
    assert settings.secret_keys[0].reveal() == "0123456789abcdef"


def test_repr_never_shows_the_secret_key() -> None:
    settings = load_settings({"TAGSERVER_SECRET_KEY": f"{GOOD_KEY},older-key-0123456789abcdef"})
    for text in (repr(settings), str(settings)):
        assert GOOD_KEY not in text
        assert "older-key-0123456789abcdef" not in text
        assert "***" in text


def test_repr_never_shows_other_secrets_from_the_environment() -> None:
    # load_settings(os.environ) sees the whole environment, Meta's access token included:
    # a logged repr(settings) must not leak it.
    token = "EAAGm0PX4ZCpsBAleakedtoken1234567890"
    settings = load_settings({"TAGSERVER_SECRET_KEY": GOOD_KEY, "META_ACCESS_TOKEN": token})
    assert token not in repr(settings)


def test_short_key_error_does_not_hide_other_errors() -> None:
    exc = config_error({"TAGSERVER_SECRET_KEY": "short", "TAGSERVER_DRY_RUN": "maybe"})
    assert sorted(i.path for i in exc.issues) == ["TAGSERVER_DRY_RUN", "TAGSERVER_SECRET_KEY"]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("TAGSERVER_ALLOWED_ORIGINS", "*", "never allowed with credentials"),
        ("TAGSERVER_ALLOWED_ORIGINS", "null", "never allowed with credentials"),
        ("TAGSERVER_TRUSTED_PROXIES", "*", "any client choose its IP"),
    ],
)
def test_wildcards_are_refused_with_the_reason(name: str, value: str, says: str) -> None:
    exc = config_error({name: value})
    (issue,) = exc.issues
    assert issue.path == name
    assert says in issue.message


@pytest.mark.parametrize("domain", ["co.uk", "github.io", "com"])
def test_a_public_suffix_is_not_a_site_domain(domain: str) -> None:
    if "." not in domain:  # a single label (localhost, com) is a bare host, allowed host-only
        assert load_settings({"TAGSERVER_SITE_DOMAINS": domain}).site_domains == (domain,)
        return
    exc = config_error({"TAGSERVER_SITE_DOMAINS": domain})
    assert "public suffix" in str(exc)


@pytest.mark.parametrize("proxies", ["0.0.0.0/0", "::/0", "127.0.0.1,0.0.0.0/0"])
def test_trusting_every_address_is_refused(proxies: str) -> None:
    assert "trusts every address" in str(config_error({"TAGSERVER_TRUSTED_PROXIES": proxies}))


# ---------------------------------------------------------------------------------------------
# outbox and metrics


def test_outbox_and_metrics_defaults() -> None:
    settings = load_settings({})
    assert settings.outbox == "tagserver-outbox.sqlite3"
    assert settings.outbox_lease_s == 30.0
    assert settings.retry_max_attempts is None, "retry until the event is too old"
    assert (settings.metrics_token, settings.metrics_port) == (None, None)
    assert settings.metrics_host == "127.0.0.1"


def test_outbox_and_metrics_from_the_environment() -> None:
    settings = load_settings({
        "TAGSERVER_OUTBOX": "redis://:pw@10.0.0.5:6379/2",
        "TAGSERVER_OUTBOX_LEASE": "5",
        "TAGSERVER_METRICS_TOKEN": "metrics-token-0123456789",
        "TAGSERVER_METRICS_PORT": "9100",
        "TAGSERVER_METRICS_HOST": "0.0.0.0",
        "TAGSERVER_RETRY_MAX_ATTEMPTS": "12",
    })
    assert settings.outbox == "redis://:pw@10.0.0.5:6379/2"
    assert settings.outbox_lease_s == 5.0
    assert settings.metrics_token == Secret("metrics-token-0123456789")
    assert "metrics-token" not in repr(settings)
    assert (settings.metrics_port, settings.metrics_host) == (9100, "0.0.0.0")
    assert settings.retry_max_attempts == 12
    assert load_settings({"TAGSERVER_OUTBOX": "memory"}).outbox == "memory"


def test_bad_outbox_and_metrics_settings_are_reported() -> None:
    exc = config_error({
        "TAGSERVER_OUTBOX": "postgres://db/outbox",
        "TAGSERVER_OUTBOX_LEASE": "0",
        "TAGSERVER_METRICS_TOKEN": "tiny-tok",
        "TAGSERVER_METRICS_PORT": "70000",
        "TAGSERVER_METRICS_HOST": "everywhere",
    })
    assert sorted(i.path for i in exc.issues) == [
        "TAGSERVER_METRICS_HOST", "TAGSERVER_METRICS_PORT", "TAGSERVER_METRICS_TOKEN",
        "TAGSERVER_OUTBOX", "TAGSERVER_OUTBOX_LEASE",
    ]
    assert "tiny-tok" not in str(exc)
    assert "redis://host:port/db" in str(exc)
