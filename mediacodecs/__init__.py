"""Codec helpers: Opus wrappers and video payload descriptors.

Named ``mediacodecs`` rather than ``codecs`` because the standard library's ``codecs``
module is imported at interpreter start-up and shadows any top-level package of that name.
"""

from mediacodecs.opus import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    OpusDecoder,
    OpusEncoder,
    OpusToc,
    estimate_level,
    packet_frame_count,
    packet_has_lbrr,
    packet_samples,
    parse_toc,
)

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "OpusDecoder",
    "OpusEncoder",
    "OpusToc",
    "estimate_level",
    "packet_frame_count",
    "packet_has_lbrr",
    "packet_samples",
    "parse_toc",
]

from mediacodecs.av1 import DependencyDescriptor, DependencyDescriptorTracker, TemplateStructure
from mediacodecs.h264 import H264Payload
from mediacodecs.vp8 import Vp8Descriptor
from mediacodecs.vp9 import Vp9Descriptor, Vp9PictureGroupEntry, Vp9ScalabilityStructure

__all__ += [
    "DependencyDescriptor",
    "DependencyDescriptorTracker",
    "H264Payload",
    "TemplateStructure",
    "Vp8Descriptor",
    "Vp9Descriptor",
    "Vp9PictureGroupEntry",
    "Vp9ScalabilityStructure",
]
