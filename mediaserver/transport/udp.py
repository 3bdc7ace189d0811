"""The single UDP port: one asyncio datagram protocol for every attendee's media.

A thin shell (style guide §3): each datagram is classified by its first byte (RFC 7983 §7:
0-3 STUN, 20-63 DTLS, 128-191 RTP/RTCP, anything else dropped) and handed to the sans-I/O
cores: STUN to the ICE-lite agent, which also maps 5-tuples to peers; DTLS and SRTP to the
peer of the datagram's 5-tuple. Nothing here awaits per packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any, cast

from mediaserver.clock import Clock
from mediaserver.transport.ice import IceLiteAgent, PeerAddressSelected, PeerExpired
from mediaserver.transport.peer import PeerTransport
from mediaserver.transport.stun import Address

__all__ = ["TransportStats", "UdpMediaTransport", "bind_socket"]

SOCKET_BUFFER = 4 * 1024 * 1024
"""Requested kernel buffer per direction: one port carries every attendee's media."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``host:port`` with large buffers.

    Raises:
        OSError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):  # the kernel's limit applies
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


logger = logging.getLogger(__name__)

RtpHandler = Callable[[PeerTransport, bytes, float], None]


class TransportStats:
    """Counters of the shared port (plain ints: incremented per datagram)."""

    __slots__ = ("datagrams_in", "datagrams_out", "dtls_in", "garbage", "rtp_in",
                 "send_errors", "stun_in", "unknown_address")  # fmt: skip

    def __init__(self) -> None:
        self.datagrams_in = 0
        self.datagrams_out = 0
        self.stun_in = 0
        self.dtls_in = 0
        self.rtp_in = 0
        self.garbage = 0
        self.unknown_address = 0
        self.send_errors = 0


class UdpMediaTransport(asyncio.DatagramProtocol):
    """Receives and sends every peer's datagrams on one UDP socket."""

    def __init__(self, clock: Clock, agent: IceLiteAgent) -> None:
        self.clock = clock
        self.agent = agent
        self.peers: dict[str, PeerTransport] = {}
        """Peers by local ICE ufrag."""
        self.transport: asyncio.DatagramTransport | None = None
        self.stats = TransportStats()
        self.on_rtp: RtpHandler | None = None
        self.on_rtcp: RtpHandler | None = None
        self.socket: socket.socket | None = None
        """The bound UDP socket, when the shell created it (see :func:`bind_socket`)."""
        self._backlog = False

    # -- asyncio.DatagramProtocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport implements DatagramTransport without subclassing it.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def error_received(self, exc: Exception) -> None:
        logger.debug("udp error: %s", exc)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        stats = self.stats
        stats.datagrams_in += 1
        if not data:
            stats.garbage += 1
            return
        first = data[0]
        address: Address = (addr[0], addr[1])
        now = self.clock.monotonic()
        if 128 <= first <= 191:
            stats.rtp_in += 1
            peer = self._peer_at(address)
            if peer is None:
                return
            result = peer.unprotect(data, now)
            if result is None:
                return
            is_rtcp, plain = result
            handler = self.on_rtcp if is_rtcp else self.on_rtp
            if handler is not None:
                handler(peer, plain, now)
        elif first <= 3:
            stats.stun_in += 1
            self.agent.receive_stun(data, address, now)
            self._flush_ice()
            # Consent checks count as media activity for liveness (RFC 7675).
            ufrag = self.agent.peer_for_address(address)
            if ufrag is not None:
                peer = self.peers.get(ufrag)
                if peer is not None:
                    peer.last_rx = now
        elif 20 <= first <= 63:
            stats.dtls_in += 1
            peer = self._peer_at(address)
            if peer is None:
                return
            for datagram in peer.receive_dtls(data, now):
                self.sendto(datagram, address)
        else:
            stats.garbage += 1

    def _peer_at(self, address: Address) -> PeerTransport | None:
        ufrag = self.agent.peer_for_address(address)
        peer = self.peers.get(ufrag) if ufrag is not None else None
        if peer is None:
            self.stats.unknown_address += 1
        return peer

    def _flush_ice(self) -> None:
        for datagram, address in self.agent.datagrams_to_send():
            self.sendto(datagram, address)
        for event in self.agent.events_received():
            peer = self.peers.get(event.peer)
            if peer is None:
                continue
            if isinstance(event, PeerAddressSelected):
                if peer.address != event.address:
                    logger.debug("%s selected %s", peer.key, event.address)
                peer.address = event.address
            elif isinstance(event, PeerExpired):
                logger.info("%s ICE consent expired", peer.key)
                peer.address = None

    # -- sending ------------------------------------------------------------------------

    def sendto(self, data: bytes, address: Address) -> None:
        """Send one datagram: straight to the socket, through the transport when it is full.

        A non-blocking ``sendto`` on the socket costs about half of the event loop
        transport's, and UDP datagrams are atomic, so sharing the socket is safe; the
        transport (which buffers) takes over only when the kernel buffer is full.
        """
        self.stats.datagrams_out += 1
        sock = self.socket
        if sock is not None and not self._backlog:
            try:
                sock.sendto(data, address)
                return
            except BlockingIOError:
                self._backlog = True
            except OSError:
                self.stats.send_errors += 1
                return
        if self.transport is not None:
            self.transport.sendto(data, address)
            # The transport drains its own buffer; try the socket again next time.
            self._backlog = False

    # -- peers ----------------------------------------------------------------------------

    def add_peer(self, peer: PeerTransport, now: float) -> None:
        self.agent.register_peer(peer.local_ufrag, peer.local_pwd, peer.remote_ufrag, now)
        self.peers[peer.local_ufrag] = peer

    def remove_peer(self, peer: PeerTransport) -> None:
        peer.close()
        if self.peers.pop(peer.local_ufrag, None) is not None:
            self.agent.unregister_peer(peer.local_ufrag)

    def handle_timers(self, now: float) -> None:
        """Run due ICE and DTLS timers (called from the media tick)."""
        deadline = self.agent.get_timer()
        if deadline is not None and now >= deadline:
            self.agent.handle_timer(now)
            self._flush_ice()
        for peer in self.peers.values():
            if peer.address is None:
                continue
            for datagram in peer.handle_timer(now):
                self.sendto(datagram, peer.address)
