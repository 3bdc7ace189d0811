"""The meeting's maximum resolutions (meetings-digest.md §4.5, §4.7 table)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mediaserver.gateway.resolution import CONTENT_LIMITS, VIDEO_LIMITS, exceeds, fit


@pytest.mark.parametrize(
    ("size", "limit", "over"),
    [
        ((1280, 720), "HD", False),
        ((720, 1280), "HD", False),
        ((1920, 1080), "HD", True),
        ((1281, 720), "HD", True),
        ((1920, 1080), "FHD", False),
        ((1920, 1200), "FHD", True),
        ((0, 0), "HD", False),
    ],
)
def test_cameras_above_the_limit_are_found(size: tuple[int, int], limit: str, over: bool) -> None:
    assert exceeds(*size, VIDEO_LIMITS[limit]) is over


@pytest.mark.parametrize(
    ("limit", "native", "encoded"),
    [  # The seed's content scaling table (L1508-1514).
        ("FHD", (1280, 720), (1280, 720)),
        ("FHD", (1920, 1080), (1920, 1080)),
        ("FHD", (3840, 2160), (1920, 1080)),
        ("UHD", (1920, 1080), (1920, 1080)),
        ("UHD", (3840, 2160), (3840, 2160)),
        ("UHD", (4200, 2400), (3780, 2160)),
        ("FHD", (1080, 3840), (540, 1920)),
    ],
)
def test_content_is_scaled_as_the_table_says(
    limit: str, native: tuple[int, int], encoded: tuple[int, int]
) -> None:
    assert fit(*native, CONTENT_LIMITS[limit]) == encoded


@given(st.integers(1, 10000), st.integers(1, 10000), st.sampled_from(list(CONTENT_LIMITS)))
def test_fit_always_fits_and_keeps_the_aspect(width: int, height: int, limit: str) -> None:
    box = CONTENT_LIMITS[limit]
    w, h = fit(width, height, box)
    assert not exceeds(w, h, box)
    assert w <= width and h <= height
    if (w, h) != (width, height):
        # The aspect ratio survives up to the rounding of one pixel.
        assert abs(w * height - h * width) <= max(width, height)
