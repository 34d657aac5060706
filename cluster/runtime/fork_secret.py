"""The key of the media forks' credentials (``freeswitch.fork_auth.secret``) when the
settings do not give one: generated once into the state folder, ``<state_dir>/fork-secret``
(mode 0600), and used by everything `callfleet up` starts (the ESL controller that issues
credentials and the gateway replicas that check them receive it in their settings) and by
the local tools that open forks themselves (`callfleet simulate`, `demo`).

Rotating it: stop the cluster (`callfleet down`), delete the file, start it again; or set
the secret explicitly (see docs/media-fork.md).

The key of customer profiles (``customers.secret``: profiles are filed under
HMAC-SHA256(key, number)) is kept the same way, in ``<state_dir>/customer-secret``; it is
not rotated lightly: a new key orphans every profile (docs/records.md)."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from pydantic import SecretStr

from configs.media_security import MIN_SECRET_CHARS
from configs.settings import Settings

__all__ = ["CUSTOMER_SECRET_FILE", "SECRET_FILE", "customer_secret_path", "fork_secret_path",
           "with_customer_secret", "with_fork_secret"]

log = logging.getLogger("callfleet.runtime")

SECRET_FILE = "fork-secret"
CUSTOMER_SECRET_FILE = "customer-secret"


def fork_secret_path(settings: Settings) -> Path:
    return Path(settings.state_dir) / SECRET_FILE


def with_fork_secret(settings: Settings, create: bool = True) -> Settings:
    """`settings` with ``freeswitch.fork_auth.secret`` set: as given, else the state
    folder's (created when missing and `create`). Unchanged when there is none to use."""
    auth = settings.freeswitch.fork_auth
    if auth.secret is not None:
        return settings
    secret = _read_or_create(fork_secret_path(settings), create)
    if secret is None:
        return settings
    fork_auth = auth.model_copy(update={"secret": SecretStr(secret)})
    freeswitch = settings.freeswitch.model_copy(update={"fork_auth": fork_auth})
    return settings.model_copy(update={"freeswitch": freeswitch})


def customer_secret_path(settings: Settings) -> Path:
    return Path(settings.state_dir) / CUSTOMER_SECRET_FILE


def with_customer_secret(settings: Settings, create: bool = True) -> Settings:
    """`settings` with ``customers.secret`` set: as given, else the state folder's
    (created when missing and `create`). Unchanged when there is none to use."""
    if settings.customers.secret is not None:
        return settings
    secret = _read_or_create(customer_secret_path(settings), create, "customer profile key")
    if secret is None:
        return settings
    customers = settings.customers.model_copy(update={"secret": SecretStr(secret)})
    return settings.model_copy(update={"customers": customers})


def _read_or_create(path: Path, create: bool, what: str = "media fork secret") -> str | None:
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
            log.info("generated the %s in %s", what, path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)  # it is a key: readable by its owner only
        log.warning("%s was readable by others (mode %o); now 0600", path, mode)
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"{path} holds no usable {what} (at least {MIN_SECRET_CHARS} "
                         "characters); delete it to have a new one generated")
    return secret
