"""Codec helpers: Opus wrappers and video payload descriptors.

Named ``mediacodecs`` rather than ``codecs`` because the standard library's ``codecs``
module is imported at interpreter start-up and shadows any top-level package of that name.
"""

__all__: list[str] = []
