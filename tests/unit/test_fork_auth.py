"""The media fork's credential (telephony/fork_auth.py), the settings that decide whether
a fork may come without one (configs/media_security.py, `Settings`), and the secret
`callfleet up` generates into the state folder (cluster/runtime/fork_secret.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cluster.runtime.fork_secret import fork_secret_path, with_fork_secret
from configs.settings import ConfigError, is_loopback, load_settings
from telephony.fork_auth import CredentialRefused, ForkCredentials

pytestmark = pytest.mark.unit

SECRET = "a-fork-secret-for-the-unit-tests"
CALL = "0b7a3f52-5f0e-4a51-9d1c-2f3b0c4d5e6f"
NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def credentials(secret: str = SECRET, previous: tuple[str, ...] = (), ttl_s: float = 60,
                clock: Clock | None = None) -> ForkCredentials:
    return ForkCredentials(secret, previous, ttl_s=ttl_s, clock=clock or Clock())


def refused(creds: ForkCredentials, token: object, call: str = CALL) -> str:
    with pytest.raises(CredentialRefused) as err:
        creds.verify(token, call)
    return err.value.reason


# ---- the token ------------------------------------------------------------------------------


def test_a_credential_opens_its_own_call_until_it_expires() -> None:
    clock = Clock()
    creds = credentials(clock=clock)
    token = creds.issue(CALL)
    version, expiry, signature = token.split(".")
    assert version == "v1" and int(expiry) == NOW + 60 and len(signature) == 43
    assert " " not in token and token.isascii()  # one argument on the ESL command line
    creds.verify(token, CALL)
    clock.now = NOW + 60
    creds.verify(token, CALL)  # still valid at its expiry second
    clock.now = NOW + 61
    assert refused(creds, token) == "credential expired"


def test_a_credential_does_not_open_another_call() -> None:
    token = credentials().issue(CALL)
    assert refused(credentials(), token, "another-call") == "credential not valid for this call"


@pytest.mark.parametrize("tamper", ["expiry", "signature", "version"])
def test_a_tampered_credential_is_refused(tamper: str) -> None:
    creds = credentials()
    version, expiry, signature = creds.issue(CALL).split(".")
    if tamper == "expiry":  # a later expiry under the same signature
        token, reason = f"{version}.{int(expiry) + 3600}.{signature}", "not valid for this call"
    elif tamper == "signature":
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        token, reason = f"{version}.{expiry}.{flipped}", "not valid for this call"
    else:
        token, reason = f"v2.{expiry}.{signature}", "malformed"
    assert refused(creds, token) == f"credential {reason}"


def test_a_credential_signed_with_another_secret_is_refused() -> None:
    forged = credentials("somebody-elses-secret-0123456").issue(CALL)
    assert refused(credentials(), forged) == "credential not valid for this call"


@pytest.mark.parametrize(("token", "reason"), [
    (None, "credential required"),
    ("", "credential required"),
    (12345, "credential malformed"),
    ({"v": 1}, "credential malformed"),
    ("v1.123", "credential malformed"),
    ("v1." + "9" * 20 + "." + "A" * 43, "credential malformed"),
    ("x" * 5000, "credential malformed"),
], ids=["missing", "empty", "number", "object", "short", "huge-expiry", "huge"])
def test_a_missing_or_malformed_credential_is_refused(token: object, reason: str) -> None:
    assert refused(credentials(), token) == reason


def test_a_refusal_never_quotes_the_credential() -> None:
    token = credentials().issue(CALL)
    for call in (CALL, "another-call"):
        try:
            credentials("another-secret-entirely-0123").verify(token, call)
        except CredentialRefused as err:
            assert token not in str(err) and token.split(".")[2] not in err.reason


def test_after_a_rotation_the_previous_secret_still_verifies_but_no_longer_signs() -> None:
    old = credentials("the-old-fork-secret-0123456789")
    before = old.issue(CALL)
    rotated = credentials("the-new-fork-secret-0123456789",
                          previous=("the-old-fork-secret-0123456789",))
    rotated.verify(before, CALL)  # issued just before the rotation
    after = rotated.issue(CALL)
    credentials("the-new-fork-secret-0123456789").verify(after, CALL)
    assert refused(old, after) == "credential not valid for this call"


def test_credentials_come_from_the_settings_or_not_at_all(tmp_path: Path) -> None:
    settings = load_settings(state_dir=str(tmp_path))
    assert ForkCredentials.from_settings(settings.freeswitch.fork_auth) is None
    auth = load_settings(state_dir=str(tmp_path), freeswitch={"fork_auth": {
        "secret": SECRET, "previous_secret": "the-old-fork-secret-0123456789",
        "token_ttl_s": 30}}).freeswitch.fork_auth
    creds = ForkCredentials.from_settings(auth)
    assert creds is not None and creds.ttl_s == 30
    creds.verify(ForkCredentials("the-old-fork-secret-0123456789").issue(CALL), CALL)
    assert "a-fork-secret" not in repr(auth)  # a SecretStr: masked wherever printed


def test_a_short_secret_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="freeswitch.fork_auth.secret.*at least 16"):
        load_settings(state_dir=str(tmp_path), freeswitch={"fork_auth": {"secret": "short"}})


# ---- forks without a credential: loopback-only local mode -------------------------------------


def test_local_mode_takes_forks_without_a_credential_unless_told_not_to(tmp_path: Path) -> None:
    local = load_settings(state_dir=str(tmp_path))
    assert local.loopback_only and local.unauthenticated_forks_allowed
    strict = load_settings(state_dir=str(tmp_path),
                           freeswitch={"fork_auth": {"allow_unauthenticated": False}})
    assert not strict.unauthenticated_forks_allowed


@pytest.mark.parametrize("overrides", [
    {"serve": {"host": "0.0.0.0"}},
    {"serve": {"host": "10.1.2.3"}},
    {"ray": {"node_ip": "192.168.1.20"}},
    {"ray": {"address": "10.0.0.5:6379"}},
], ids=["all-interfaces", "lan-address", "ray-node", "existing-cluster"])
def test_a_non_loopback_bind_refuses_forks_without_a_credential(
        tmp_path: Path, overrides: dict) -> None:
    settings = load_settings(state_dir=str(tmp_path), **overrides)
    assert not settings.loopback_only and not settings.unauthenticated_forks_allowed
    with pytest.raises(ConfigError, match="allow_unauthenticated: true needs every bind host"):
        load_settings(state_dir=str(tmp_path),
                      freeswitch={"fork_auth": {"allow_unauthenticated": True}}, **overrides)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False),
    ("gateway.example.com", False),
])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# ---- the generated secret ------------------------------------------------------------------------


def test_up_generates_the_secret_once_into_the_state_folder_readable_by_its_owner_only(
        tmp_path: Path) -> None:
    settings = load_settings(state_dir=str(tmp_path))
    assert with_fork_secret(settings, create=False) is settings  # none yet, none made
    assert not fork_secret_path(settings).exists()
    first = with_fork_secret(settings).freeswitch.fork_auth.secret
    path = fork_secret_path(settings)
    assert first is not None and len(first.get_secret_value()) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = with_fork_secret(settings, create=False).freeswitch.fork_auth.secret
    assert again.get_secret_value() == first.get_secret_value()  # the tools read the same
    assert settings.freeswitch.fork_auth.secret is None  # the given settings are untouched


def test_a_configured_secret_wins_and_a_loose_file_is_tightened(tmp_path: Path) -> None:
    configured = load_settings(state_dir=str(tmp_path), freeswitch={"fork_auth": {"secret": SECRET}})
    assert with_fork_secret(configured) is configured
    assert not fork_secret_path(configured).exists()
    path = fork_secret_path(configured)
    path.write_text("a-secret-someone-wrote-by-hand\n")
    os.chmod(path, 0o644)
    settings = with_fork_secret(load_settings(state_dir=str(tmp_path)))
    assert settings.freeswitch.fork_auth.secret.get_secret_value() == "a-secret-someone-wrote-by-hand"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
