"""ServerConfig: TLS, public URL and audio options (flags, environment, checks)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mediaserver.config import ServerConfig, add_arguments, config_from_args
from mediaserver.control.operations import media_placement


def parse(argv: list[str], environ: dict[str, str] | None = None) -> ServerConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv), environ or {})


def test_base_url_follows_tls_and_bracketed_ipv6(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    assert parse([]).base_url == "http://127.0.0.1:8080"
    tls = parse(["--tls-cert", str(cert), "--tls-key", str(key), "--public-host", "::1"])
    assert tls.base_url == "https://[::1]:8080"
    placement = media_placement(tls, "m")
    assert placement["SignalingUrl"] == "wss://[::1]:8080/control/m"
    assert placement["AudioHostUrl"] == "[::1]:3478"


def test_public_url_from_the_environment_wins_over_host_and_port() -> None:
    config = parse([], {"CARILLON_PUBLIC_URL": "http://proxy.test:81/"})
    assert config.base_url == "http://proxy.test:81"
    assert media_placement(config, "m")["ScreenDataUrl"] == "ws://proxy.test:81/v2/screen/m"


@pytest.mark.parametrize(
    "argv",
    [
        ["--tls-cert", "cert.pem"],
        ["--tls-key", "key.pem"],
        ["--tls-cert", "missing-cert.pem", "--tls-key", "missing-key.pem"],
        ["--public-url", "ftp://x"],
        ["--public-url", "https://x/?a=b"],
    ],
)
def test_inconsistent_tls_or_url_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse(argv)


def test_the_stereo_bitrate_has_a_flag_a_variable_and_a_default() -> None:
    assert parse([]).audio_stereo_bitrate == 64000
    assert parse(["--audio-stereo-bitrate", "128000"]).audio_stereo_bitrate == 128000
    env = {"CARILLON_AUDIO_STEREO_BITRATE": "96000"}
    assert parse([], env).audio_stereo_bitrate == 96000


@pytest.mark.parametrize("value", ["5999", "128001"])
def test_a_stereo_bitrate_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(SystemExit, match="--audio-stereo-bitrate must be 6000-128000"):
        parse(["--audio-stereo-bitrate", value])


def test_server_side_adaption_is_on_unless_turned_off() -> None:
    assert parse([]).server_side_adaption is True
    assert parse(["--no-server-side-adaption"]).server_side_adaption is False
    env = {"CARILLON_SERVER_SIDE_ADAPTION": "0"}
    assert parse([], env).server_side_adaption is False
    assert parse(["--server-side-adaption"], env).server_side_adaption is True
    assert parse(["--log-json"]).log_json is True
