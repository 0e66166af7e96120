"""CDSE credentials: arguments, then environment, then config file; secrets masked in repr and logs."""

from __future__ import annotations

import logging

import pytest

from imagery.config import (
    CDSE_BASE_URL,
    SecretMaskingFilter,
    default_config_path,
    load_cdse_credentials,
    register_secret,
)
from imagery.errors import CredentialsError, InputError


def write_config(tmp_path, text: str):
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_arguments_win_over_environment_and_file(tmp_path):
    cfg = write_config(tmp_path, '[cdse]\nclient_id = "file-id"\nclient_secret = "file-secret"\n')
    env = {"SH_CLIENT_ID": "env-id", "SH_CLIENT_SECRET": "env-secret"}
    creds = load_cdse_credentials("arg-id", "arg-secret", env=env, config_path=cfg)
    assert (creds.client_id, creds.client_secret, creds.origin) == ("arg-id", "arg-secret", "arguments")


def test_environment_wins_over_file_and_harborwatch_vars_over_sh_vars(tmp_path):
    cfg = write_config(tmp_path, '[cdse]\nclient_id = "file-id"\nclient_secret = "file-secret"\n')
    env = {"SH_CLIENT_ID": "sh-id", "SH_CLIENT_SECRET": "sh-secret"}
    assert load_cdse_credentials(env=env, config_path=cfg).client_id == "sh-id"
    env |= {"HARBORWATCH_CDSE_CLIENT_ID": "hw-id", "HARBORWATCH_CDSE_CLIENT_SECRET": "hw-secret"}
    creds = load_cdse_credentials(env=env, config_path=cfg)
    assert (creds.client_id, creds.origin) == ("hw-id", "env:HARBORWATCH_CDSE_CLIENT_ID")


def test_file_from_harborwatch_config_env_with_urls(tmp_path):
    cfg = write_config(tmp_path, '[cdse]\nclient_id = "file-id"\nclient_secret = "file-secret"\n'
                                 'base_url = "http://127.0.0.1:9/"\ntoken_url = "http://127.0.0.1:9/token"\n')
    env = {"HARBORWATCH_CONFIG": str(cfg)}
    assert default_config_path(env) == cfg
    creds = load_cdse_credentials(env=env)
    assert creds.client_id == "file-id" and creds.origin == f"file:{cfg}"
    assert creds.base_url == "http://127.0.0.1:9" and creds.token_url == "http://127.0.0.1:9/token"


def test_missing_credentials_say_how_to_provide_them(tmp_path):
    with pytest.raises(CredentialsError) as err:
        load_cdse_credentials(env={}, config_path=tmp_path / "absent.toml")
    msg = str(err.value)
    # the config file named is the one read ($HARBORWATCH_CONFIG, say), not always ~/.config's
    assert "\n" not in msg and "SH_CLIENT_ID" in msg and str(tmp_path / "absent.toml") in msg
    assert err.value.exit_code == 2 and isinstance(err.value, PermissionError)


def test_a_config_file_with_half_the_credentials_says_so(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[cdse]\nclient_id = "abc"\n')
    with pytest.raises(CredentialsError, match=r"\[cdse\] has client_id but no client_secret"):
        load_cdse_credentials(env={}, config_path=cfg)


def test_half_set_environment_is_an_error(tmp_path):
    with pytest.raises(CredentialsError, match="SH_CLIENT_SECRET"):
        load_cdse_credentials(env={"SH_CLIENT_ID": "only-id"}, config_path=tmp_path / "absent.toml")


def test_defaults_point_at_copernicus_data_space(tmp_path):
    creds = load_cdse_credentials("id", "secret", env={}, config_path=tmp_path / "absent.toml")
    assert creds.base_url == CDSE_BASE_URL == "https://sh.dataspace.copernicus.eu"
    assert creds.token_url.startswith("https://identity.dataspace.copernicus.eu/auth/realms/CDSE/")


def test_repr_masks_the_secret(tmp_path):
    creds = load_cdse_credentials("client-1234", "s3cr3t-value", env={}, config_path=tmp_path / "absent.toml")
    assert "s3cr3t-value" not in repr(creds) and "s3cr3t-value" not in str(creds)
    assert "client-1234" not in repr(creds)  # the id is only partly shown


def test_invalid_toml_is_input_error(tmp_path):
    cfg = write_config(tmp_path, "[cdse\nclient_id = ")
    with pytest.raises(InputError, match="not valid TOML"):
        load_cdse_credentials(env={}, config_path=cfg)


def test_registered_secrets_are_masked_in_log_records(caplog):
    register_secret("hunter2-very-secret")
    logger = logging.getLogger("harborwatch.test")
    with caplog.at_level(logging.INFO, logger="harborwatch.test"):
        caplog.handler.addFilter(SecretMaskingFilter())
        logger.info("token request with secret=%s", "hunter2-very-secret")
    assert "hunter2-very-secret" not in caplog.text and "secret=****" in caplog.text
