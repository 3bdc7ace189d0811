"""The audio flags of ``carillon serve`` (mediaserver.config)."""

from __future__ import annotations

import argparse

import pytest

from mediaserver.config import ServerConfig, add_arguments, config_from_args


def _config(argv: list[str], environ: dict[str, str] | None = None) -> ServerConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv), environ or {})


def test_the_stereo_bitrate_has_a_flag_a_variable_and_a_default() -> None:
    assert _config([]).audio_stereo_bitrate == 64000
    assert _config(["--audio-stereo-bitrate", "128000"]).audio_stereo_bitrate == 128000
    env = {"CARILLON_AUDIO_STEREO_BITRATE": "96000"}
    assert _config([], env).audio_stereo_bitrate == 96000


@pytest.mark.parametrize("value", ["5999", "128001"])
def test_a_stereo_bitrate_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(SystemExit, match="--audio-stereo-bitrate must be 6000-128000"):
        _config(["--audio-stereo-bitrate", value])
