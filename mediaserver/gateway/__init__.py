"""Signaling gateway: the WebSocket shell and the per-meeting rooms."""

from mediaserver.gateway.room import MeetingRoom, Member
from mediaserver.gateway.server import SUBPROTOCOL, MediaBackend, SignalingGateway

__all__ = ["SUBPROTOCOL", "MediaBackend", "MeetingRoom", "Member", "SignalingGateway"]
