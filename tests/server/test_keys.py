"""The API key store: keys issued once, kept only as hashes, looked up, revoked."""

from __future__ import annotations

import pytest

from server.keys import KEY_PREFIX, DuplicateName, KeyStore, KeyStoreError, UnknownName, default_path, digest


@pytest.fixture
def store(tmp_path) -> KeyStore:
    return KeyStore(tmp_path / "state" / "keys.db")


def test_a_key_is_issued_once_and_only_its_hash_is_stored(store):
    key, record = store.add("alice", max_sessions=2, minutes_per_day=30)
    other, _ = store.add("bob")
    assert key.startswith(KEY_PREFIX) and len(key) == len(KEY_PREFIX) + 43 and key != other
    assert record.prefix == key[: len(record.prefix)] and len(record.prefix) < len(key) // 3
    stored = store.path.read_bytes()
    for k in (key, other):
        secret = k[len(KEY_PREFIX) :]
        assert secret.encode() not in stored and secret[10:30].encode() not in stored
        assert digest(k).encode() in stored
    assert store.path.stat().st_mode & 0o077 == 0  # readable by its owner only


def test_lookup_finds_a_key_by_its_hash(store):
    key, _ = store.add("alice", max_sessions=2, minutes_per_day=0.5)
    found = store.lookup(key)
    assert (found.name, found.max_sessions, found.minutes_per_day, found.active) == ("alice", 2, 0.5, True)
    assert store.lookup(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.lookup("") is None and store.lookup("srt_") is None


def test_revoke(store):
    key, _ = store.add("alice")
    store.add("bob")
    assert store.active() == 2
    revoked = store.revoke("alice")
    assert not revoked.active and revoked.revoked
    assert not store.lookup(key).active and store.active() == 1
    assert store.revoke("alice").revoked == revoked.revoked  # once revoked, it stays as it was
    with pytest.raises(UnknownName, match="no key named 'carol'"):
        store.revoke("carol")


def test_names_are_unique_and_limits_checked(store):
    store.add("alice")
    store.revoke("alice")
    with pytest.raises(DuplicateName, match="exists already"):
        store.add("alice")
    for name in ("", "has space", "x" * 65, "-dash-first", "semi;colon"):
        with pytest.raises(KeyStoreError, match="bad key name"):
            store.add(name)
    with pytest.raises(KeyStoreError, match="at least 1"):
        store.add("carol", max_sessions=0)
    with pytest.raises(KeyStoreError, match="more than 0"):
        store.add("carol", minutes_per_day=0)
    assert [r.name for r in store.list()] == ["alice"]


def test_an_empty_store_is_not_created_by_counting(tmp_path):
    store = KeyStore(tmp_path / "nowhere" / "keys.db")
    assert store.active() == 0 and not store.path.parent.exists()


def test_the_default_place(monkeypatch, tmp_path):
    monkeypatch.setenv("SONIC_RT_HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / "keys.db"
    monkeypatch.delenv("SONIC_RT_HOME")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "sonic-rt" / "keys.db"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_path() == tmp_path / ".local" / "state" / "sonic-rt" / "keys.db"


def keys_cli(*args: str):
    from click.testing import CliRunner

    from server.cli import main

    return CliRunner().invoke(main, ["keys", *args])


def test_the_keys_command(tmp_path):
    db = str(tmp_path / "keys.db")
    added = keys_cli("add", "alice", "--max-sessions", "2", "--minutes-per-day", "90", "--keys", db)
    assert added.exit_code == 0, added.output
    key = added.stdout.strip()
    assert key.startswith(KEY_PREFIX) and "\n" not in key  # the key alone on stdout, for scripts
    assert "shown only now" in added.stderr
    assert KeyStore(tmp_path / "keys.db").lookup(key).name == "alice"
    assert keys_cli("add", "bob", "--keys", db).exit_code == 0

    listed = keys_cli("list", "--keys", db)
    assert listed.exit_code == 0
    header, alice, bob = listed.stdout.splitlines()
    assert header.split() == ["NAME", "PREFIX", "SESSIONS", "MINUTES/DAY", "CREATED", "REVOKED"]
    assert alice.split()[:4] == ["alice", key[:10] + "…", "2", "90"] and alice.split()[-1] == "-"
    assert bob.split()[2:4] == ["server's", "unlimited"]
    assert key not in listed.output

    revoked = keys_cli("revoke", "bob", "--keys", db)
    assert revoked.exit_code == 0 and "revoked key 'bob'" in revoked.stdout
    assert keys_cli("list", "--keys", db).stdout.splitlines()[2].split()[-1] != "-"


def test_the_keys_command_refuses_clearly(tmp_path):
    db = str(tmp_path / "keys.db")
    keys_cli("add", "alice", "--keys", db)
    for args, message in [
        (("add", "alice"), "a key named 'alice' exists already"),
        (("add", "two words"), "bad key name"),
        (("add", "carol", "--max-sessions", "0"), "0 is not in the range x>=1"),
        (("add", "carol", "--minutes-per-day", "0"), "0.0 is not in the range x>0"),
        (("revoke", "carol"), "no key named 'carol'"),
    ]:
        result = keys_cli(*args, "--keys", db)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert keys_cli("list", "--keys", str(tmp_path / "other.db")).stderr.startswith("no keys")
