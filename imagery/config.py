"""Credentials and settings for sources that need them (Copernicus Data Space / Sentinel Hub).

Read from arguments, then the environment, then a TOML file (``$HARBORWATCH_CONFIG`` or
``~/.config/harborwatch/config.toml``); secrets are masked in ``repr`` and in log records.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 (tomli comes with sentinelhub)
    import tomli as tomllib  # type: ignore[no-redef]

from imagery.errors import CredentialsError, InputError

CDSE_BASE_URL = "https://sh.dataspace.copernicus.eu"
CDSE_TOKEN_URL = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"

CONFIG_ENV = "HARBORWATCH_CONFIG"
#: Environment variables for the client id and secret, most specific first.
CLIENT_ID_ENVS = ("HARBORWATCH_CDSE_CLIENT_ID", "SH_CLIENT_ID")
CLIENT_SECRET_ENVS = ("HARBORWATCH_CDSE_CLIENT_SECRET", "SH_CLIENT_SECRET")
BASE_URL_ENV = "HARBORWATCH_CDSE_BASE_URL"
TOKEN_URL_ENV = "HARBORWATCH_CDSE_TOKEN_URL"

def how_to_provide(config: Path | str = "~/.config/harborwatch/config.toml") -> str:
    """How to give CDSE credentials, naming the config file that is read (``$HARBORWATCH_CONFIG`` or the
    default)."""
    return (
        "set SH_CLIENT_ID and SH_CLIENT_SECRET (or HARBORWATCH_CDSE_CLIENT_ID / "
        f"HARBORWATCH_CDSE_CLIENT_SECRET), or put client_id and client_secret under [cdse] in {config} "
        "(an OAuth client from https://shapps.dataspace.copernicus.eu/dashboard/ > User settings > "
        "OAuth clients)"
    )


def mask(secret: str | None, keep: int = 0) -> str:
    """``'abcdef…'`` → ``'ab****'`` (``keep`` leading characters shown; none for real secrets)."""
    if not secret:
        return "<unset>"
    keep = min(keep, len(secret) // 3)
    return secret[:keep] + "****"


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "harborwatch" / "config.toml"


def load_config_file(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> dict:
    """The parsed TOML config, or ``{}`` when the file does not exist. A broken file is an InputError."""
    p = Path(path) if path is not None else default_config_path(env)
    if not p.is_file():
        return {}
    try:
        with open(p, "rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"config file {p} is not valid TOML: {e}") from None


@dataclass(frozen=True)
class CdseCredentials:
    """OAuth client credentials and endpoints for Copernicus Data Space Sentinel Hub."""

    client_id: str
    client_secret: str = field(repr=False)
    base_url: str = CDSE_BASE_URL
    token_url: str = CDSE_TOKEN_URL
    #: Where the credentials came from: "arguments", "env:SH_CLIENT_ID", "file:/path" (for messages).
    origin: str = ""

    def __repr__(self) -> str:
        return (f"CdseCredentials(client_id={mask(self.client_id, keep=4)!r}, client_secret='****', "
                f"base_url={self.base_url!r}, token_url={self.token_url!r}, origin={self.origin!r})")

    __str__ = __repr__


def load_cdse_credentials(
    client_id: str | None = None,
    client_secret: str | None = None,
    *,
    base_url: str | None = None,
    token_url: str | None = None,
    env: Mapping[str, str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
) -> CdseCredentials:
    """Credentials from arguments, then environment, then the config file's ``[cdse]`` table.

    The id and the secret must come from the same place, so a stale secret in the file never pairs with
    an id from the environment. Raises ``CredentialsError`` saying how to provide them when none are found.
    """
    env = os.environ if env is None else env
    table: dict[str, Any] = {}
    file_path = Path(config_path) if config_path is not None else default_config_path(env)
    loaded = load_config_file(file_path, env)
    if loaded:
        table = loaded.get("cdse") or loaded.get("sentinelhub") or {}
        if not isinstance(table, dict):
            raise InputError(f"config file {file_path}: [cdse] must be a table")

    found: tuple[str, str, str] | None = None
    if client_id or client_secret:
        if not (client_id and client_secret):
            raise CredentialsError("give both a CDSE client id and a client secret, not only one")
        found = (client_id, client_secret, "arguments")
    if found is None:
        for id_var, secret_var in zip(CLIENT_ID_ENVS, CLIENT_SECRET_ENVS, strict=True):
            cid, secret = env.get(id_var), env.get(secret_var)
            if cid and secret:
                found = (cid, secret, f"env:{id_var}")
                break
            if cid or secret:
                have, missing = (id_var, secret_var) if cid else (secret_var, id_var)
                raise CredentialsError(f"{have} is set but {missing} is not; set both")
    if found is None and table.get("client_id") and table.get("client_secret"):
        found = (str(table["client_id"]), str(table["client_secret"]), f"file:{file_path}")
    if found is None and (table.get("client_id") or table.get("client_secret")):
        have = "client_id" if table.get("client_id") else "client_secret"
        missing = "client_secret" if have == "client_id" else "client_id"
        raise CredentialsError(f"config file {file_path}: [cdse] has {have} but no {missing}; give both")
    if found is None:
        raise CredentialsError(f"no Copernicus Data Space credentials: {how_to_provide(file_path)}")

    cid, secret, origin = found
    register_secret(secret)
    return CdseCredentials(
        client_id=cid,
        client_secret=secret,
        base_url=(base_url or env.get(BASE_URL_ENV) or table.get("base_url") or CDSE_BASE_URL).rstrip("/"),
        token_url=token_url or env.get(TOKEN_URL_ENV) or table.get("token_url") or CDSE_TOKEN_URL,
        origin=origin,
    )


# -- secrets never reach log output ------------------------------------------------------------------

_SECRETS: set[str] = set()
_LOCK = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret so that ``SecretMaskingFilter`` replaces it in every log record."""
    if value and len(value) >= 8:  # short strings would mask ordinary words
        with _LOCK:
            _SECRETS.add(value)
        install_log_masking()


def redact_secrets(text: str) -> str:
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for s in secrets:
        text = text.replace(s, "****")
    return text


class SecretMaskingFilter(logging.Filter):
    """Replaces registered secrets in a record's final message (args are formatted first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is logging's problem, not ours
                return True
            masked = redact_secrets(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


_FILTER = SecretMaskingFilter()


def install_log_masking() -> None:
    """Attach the masking filter to the root handlers and to the loggers of HTTP/OAuth libraries.

    Handler filters see records propagated from every logger; logger filters cover records that
    libraries emit before the CLI has configured handlers.
    """
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    for name in ("sentinelhub", "requests_oauthlib", "oauthlib", "urllib3", "imagery", "harborwatch"):
        lg = logging.getLogger(name)
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)
