"""tagserver.server_events.keys and .idempotency on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tagserver.cli import main
from tagserver.server_events.idempotency import WINDOW_S, claim_event_ids, release_event_ids
from tagserver.server_events.keys import (
    KEY_PREFIX,
    KeyStoreError,
    authenticate,
    create_key,
    list_keys,
    opened,
    revoke_key,
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keys.sqlite3"


def test_create_then_authenticate(path: Path) -> None:
    key, plain = create_key(path, "crm", tags=("meta",))
    assert plain.startswith("tsk_") and len(plain) == 4 + 12 + 1 + 43
    with opened(path) as db:
        found = authenticate(db, plain)
    assert found is not None and found.name == "crm" and found.tags == ("meta",)
    assert found.scope_text == "tags=meta"


def test_the_key_is_stored_only_as_a_salted_hash(path: Path) -> None:
    _, plain = create_key(path, "crm", all_tags=True)
    # tsk_<12 hex>_<secret>: the secret is token_urlsafe and may itself hold "_"
    secret = plain.removeprefix(KEY_PREFIX).split("_", 1)[1]
    assert len(secret) >= 40, secret
    raw = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        raw += wal.read_bytes()
    assert secret.encode() not in raw
    db = sqlite3.connect(path)
    (digest,) = db.execute("SELECT digest FROM api_keys").fetchone()
    db.close()
    assert len(digest) == 32


@pytest.mark.parametrize("mangle", [
    lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # wrong secret
    lambda k: "tsk_000000000000_" + k.rsplit("_", 1)[1],  # unknown id
    lambda k: k + "x",  # malformed
    lambda k: "",
])
def test_wrong_keys_are_refused(path: Path, mangle: object) -> None:
    _, plain = create_key(path, "crm", all_tags=True)
    with opened(path) as db:
        assert authenticate(db, mangle(plain)) is None  # type: ignore[operator]


def test_revoked_key_is_refused_and_listed(path: Path) -> None:
    _, plain = create_key(path, "crm", pixels=("1234567890",), now=100.0)
    revoked = revoke_key(path, "crm", now=200.0)
    assert revoked.revoked_at == 200.0
    with opened(path) as db:
        assert authenticate(db, plain) is None
    [listed] = list_keys(path)
    assert (listed.name, listed.revoked_at, listed.pixels) == ("crm", 200.0, ("1234567890",))


def test_key_rules(path: Path) -> None:
    with pytest.raises(KeyStoreError, match="needs a scope"):
        create_key(path, "crm")
    with pytest.raises(KeyStoreError, match="key name"):
        create_key(path, "bad name!", all_tags=True)
    with pytest.raises(KeyStoreError, match="pixel ids"):
        create_key(path, "crm", pixels=("abc",))
    create_key(path, "crm", all_tags=True)
    with pytest.raises(KeyStoreError, match="exists already"):
        create_key(path, "crm", all_tags=True)
    with pytest.raises(KeyStoreError, match="no key called"):
        revoke_key(path, "nobody")


def test_cli_create_list_revoke(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TAGSERVER_KEYS", str(path))
    assert main(["keys", "create", "shop", "--tags", "meta, ga4"]) == 0
    out, err = capsys.readouterr()
    plain = out.strip()
    assert plain.startswith("tsk_") and "shown only now" in err
    assert main(["keys", "list"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("shop\tactive\ttags=meta,ga4\tcreated ")
    assert plain not in out
    assert main(["keys", "revoke", "shop"]) == 0
    assert main(["keys", "list"]) == 0
    assert "shop\trevoked" in capsys.readouterr().out
    assert main(["keys", "create", "x"]) == 1
    assert "needs a scope" in capsys.readouterr().err


def test_idempotency_window_release_and_repeats_in_one_batch(path: Path) -> None:
    with opened(path) as db:
        assert claim_event_ids(db, "crm", ["a", "b", "a"], now=1000.0) == [False, False, True]
        assert claim_event_ids(db, "crm", ["a", "c"], now=1001.0) == [True, False]
        assert claim_event_ids(db, "other-key", ["a"], now=1001.0) == [False]
        release_event_ids(db, "crm", ["c"], claimed_at=1001.0)
        release_event_ids(db, "crm", ["a"], claimed_at=1001.0)  # not its claim: kept
        assert claim_event_ids(db, "crm", ["a", "c"], now=1002.0) == [True, False]
        later = 1000.0 + WINDOW_S + 1
        assert claim_event_ids(db, "crm", ["a", "b"], now=later) == [False, False]
