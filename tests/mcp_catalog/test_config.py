"""The server configuration: defaults, derived URLs, and paths relative to the file."""

from pathlib import Path

import pytest

from mcp_catalog.config import ConfigError, is_loopback, load_config


def test_the_shipped_configuration_serves_loopback_with_development_tokens():
    config = load_config()
    assert (config.profile, config.transport) == ("development", "stdio")
    assert config.resource() == "http://127.0.0.1:8765/mcp" == config.audience()
    assert config.hosts() == ["127.0.0.1:8765", "localhost:8765"]
    assert config.stdio.role == "researcher" and config.auth.issuer == "biofed-dev"


def test_a_public_url_sets_the_resource_audience_and_accepted_host(tmp_path: Path):
    file = tmp_path / "server.yaml"
    file.write_text(
        "http: {host: 0.0.0.0, port: 443, public_url: 'https://catalog.example.org/',"
        " tls_cert: c.pem, tls_key: k.pem}\n"
    )
    config = load_config(file)
    assert config.resource() == "https://catalog.example.org/mcp" == config.audience()
    assert "catalog.example.org" in config.hosts()


def test_policy_and_contract_paths_are_relative_to_the_configuration_file(tmp_path: Path):
    folder = tmp_path / "deploy"
    folder.mkdir()
    (folder / "server.yaml").write_text("policy: policy.yaml\ncontract: ../contract.json\n")
    config = load_config(folder / "server.yaml")
    assert config.policy == str((folder / "policy.yaml").resolve())
    assert config.contract == str((tmp_path / "contract.json").resolve())


@pytest.mark.parametrize(
    "text", ["profile: staging\n", "http: {port: 0}\n", "unknown_key: 1\n", "[unclosed\n"]
)
def test_an_invalid_configuration_is_a_config_error_naming_the_file(tmp_path: Path, text: str):
    file = tmp_path / "server.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError, match="server.yaml"):
        load_config(file)


def test_only_loopback_addresses_count_as_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5")
    assert not is_loopback("catalog.example.org")
