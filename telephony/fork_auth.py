"""The credential a media fork carries: proof that CallFleet's ESL controller started it.

The controller issues one per fork it starts (``uuid_audio_fork … start``) and puts it in
the fork's metadata as ``credential``; FreeSWITCH (or the simulator, which is FreeSWITCH
here) sends that metadata as the fork's first frame, and the media gateway verifies it
before any bot runs. Format (ASCII, no spaces, so it survives the ESL command line)::

    v1.<expiry>.<signature>

``expiry`` is a Unix time in whole seconds; ``signature`` is the unpadded base64url
HMAC-SHA256, keyed with the shared secret, of ``callfleet-fork-v1\\n<call id>\\n<expiry>``.
The call id is not in the token: the verifier puts in the id of the fork it is checking,
so a credential opens only its own call's fork, and only until it expires.

No I/O and no logging here; a refusal's reason never quotes the credential.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable

__all__ = ["CREDENTIAL_FIELD", "CredentialRefused", "ForkCredentials"]

CREDENTIAL_FIELD = "credential"  # the metadata key that carries it
VERSION = "v1"
_CONTEXT = b"callfleet-fork-v1"
_TOKEN = re.compile(r"v1\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")  # 32 bytes -> 43 chars
MAX_TOKEN_CHARS = 64


class CredentialRefused(Exception):
    """A fork's credential does not open it; `reason` is safe to log and to send."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ForkCredentials:
    """Issues and verifies fork credentials with one signing key and, during a rotation,
    the keys before it (accepted for verifying only)."""

    def __init__(self, secret: str | bytes, previous: Iterable[str | bytes] = (),
                 ttl_s: float = 60.0, clock: Callable[[], float] = time.time):
        self._keys = [_key(secret), *(_key(p) for p in previous if p)]
        if not self._keys[0]:
            raise ValueError("a fork secret must not be empty")
        self.ttl_s = ttl_s
        self.clock = clock

    @classmethod
    def from_settings(cls, auth) -> ForkCredentials | None:
        """From a `configs.media_security.ForkAuthSettings`; None without a secret."""
        if auth.secret is None:
            return None
        previous = [auth.previous_secret.get_secret_value()] if auth.previous_secret else []
        return cls(auth.secret.get_secret_value(), previous, ttl_s=auth.token_ttl_s)

    def issue(self, call_uuid: str, ttl_s: float | None = None) -> str:
        """A credential for the fork of `call_uuid`, valid for `ttl_s` (default: the TTL
        given at construction)."""
        expiry = int(self.clock() + (self.ttl_s if ttl_s is None else ttl_s))
        return f"{VERSION}.{expiry}.{_sign(self._keys[0], call_uuid, expiry)}"

    def verify(self, credential: object, call_uuid: str) -> None:
        """Raise CredentialRefused unless `credential` was issued for `call_uuid` with one
        of our keys and has not expired. Signatures are compared in constant time."""
        if credential is None or credential == "":
            raise CredentialRefused("credential required")
        if not isinstance(credential, str) or len(credential) > MAX_TOKEN_CHARS:
            raise CredentialRefused("credential malformed")
        match = _TOKEN.fullmatch(credential)
        if match is None:
            raise CredentialRefused("credential malformed")
        expiry, signature = int(match.group(1)), match.group(2)
        valid = False
        for key in self._keys:  # every key, always: the time taken does not say which one
            valid |= hmac.compare_digest(_sign(key, call_uuid, expiry), signature)
        if not valid:
            raise CredentialRefused("credential not valid for this call")
        if self.clock() > expiry:
            raise CredentialRefused("credential expired")


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def _sign(key: bytes, call_uuid: str, expiry: int) -> str:
    message = b"\n".join((_CONTEXT, call_uuid.encode("utf-8"), str(expiry).encode("ascii")))
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
