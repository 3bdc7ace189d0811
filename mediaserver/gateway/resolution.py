"""The meeting's maximum video resolutions (``MeetingFeatures``, meetings-digest.md §4.5, §4.8).

* ``Video.MaxResolution``: ``HD`` is 1280x720, ``FHD`` 1920x1080 (``None`` allows no camera,
  refused elsewhere). A camera whose SUBSCRIBE declares larger dimensions is **refused**
  with Chime's reason text (meetings-digest.md §4.5, seed L1462-1465): the client is told
  to stop sending video (SUBSCRIBE_ACK status 206).
* ``Content.MaxResolution``: ``FHD`` is 1920x1080, ``UHD`` 3840x2160. Larger content is
  **scaled down**, not refused (seed L1478): the client scales its content track to fit,
  keeping the aspect ratio with the height capped (the seed's table, L1508-1514: 3840x2160
  under FHD → 1920x1080, 4200x2400 under UHD → 3780x2160). The server announces the
  scaled dimensions in INDEX.

Dimensions compare regardless of orientation (a portrait 720x1280 camera is HD), and a
descriptor without dimensions (0) is not checked: the client did not declare them.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CONTENT_LIMITS",
    "RESOLUTION_REFUSAL",
    "VIDEO_LIMITS",
    "exceeds",
    "fit",
]

VIDEO_LIMITS: Final = {"HD": (1280, 720), "FHD": (1920, 1080)}
"""``Video.MaxResolution`` → the largest camera (width, height)."""
CONTENT_LIMITS: Final = {"FHD": (1920, 1080), "UHD": (3840, 2160)}
"""``Content.MaxResolution`` → the largest content (width, height)."""
RESOLUTION_REFUSAL: Final = (
    "Disabled video/content send capability, reason: Video resolution is above limit of"
    " current meeting feature selection."
)
"""The reason Chime gives for a camera above ``Video.MaxResolution`` (seed L1462-1465)."""


def _box(width: int, height: int, limit: tuple[int, int]) -> tuple[int, int, int, int]:
    """(long side, short side) of the picture and of the limit."""
    return max(width, height), min(width, height), max(limit), min(limit)


def exceeds(width: int, height: int, limit: tuple[int, int]) -> bool:
    """Whether a ``width`` x ``height`` picture does not fit in ``limit`` (either orientation)."""
    if width <= 0 or height <= 0:
        return False
    long_side, short_side, long_max, short_max = _box(width, height, limit)
    return long_side > long_max or short_side > short_max


def fit(width: int, height: int, limit: tuple[int, int]) -> tuple[int, int]:
    """The dimensions scaled down (aspect kept) to fit ``limit``; unchanged when they fit."""
    if not exceeds(width, height, limit):
        return width, height
    long_side, short_side, long_max, short_max = _box(width, height, limit)
    # Integer arithmetic: the side that binds lands exactly on the limit.
    if long_side * short_max > short_side * long_max:
        new_long, new_short = long_max, short_side * long_max // long_side
    else:
        new_long, new_short = long_side * short_max // short_side, short_max
    return (new_long, new_short) if width >= height else (new_short, new_long)
