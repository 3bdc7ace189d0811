"""The SFU core (sans-I/O): per-packet forwarding, layer selection, repair and congestion.

Data flow for one incoming video packet::

    SRTP unprotect ─► PacketViewParser.parse ─► NackGenerator.receive (uplink loss)
                                        │
                                        ▼
             egress.fan_out(subscriptions snapshot, view, stream id, now)
               for each Subscription:  Forwarder.decide ─► LayerSelector.select
                                                        └► SeqMunger.input / drop
                                       render (+ TransportSequencer.next)
                                       RetransmissionBuffer.store
                                       EgressQueue.put (drop-oldest)
                                        │
                                        ▼
             I/O shell: queue.packets_to_send() ─► SrtpContext.protect_rtp ─► sendto

The server's own path (``mediaserver.media``) puts each copy through the subscriber's
``Pacer`` instead (token bucket at 2.5x its downlink capacity, drop-oldest queue bounded
in packets and time) and drains all pacers from one loop timer.

Feedback from a subscriber: NACK ─► RetransmissionBuffer.receive_nack (RTX);
transport-cc ─► TransportSequencer.receive_feedback ─► BandwidthEstimator ─► allocate ─►
LayerSelector.set_target; PLI needs ─► KeyframeRequestThrottle.

Feedback to a publisher: every uplink packet with a transport-wide sequence number goes
to its connection's TransportFeedbackGenerator.receive_rtp (the number and arrival time
into a ring); every 60 ms (up to 240 ms at low rates) the server's tick sends what
``feedback`` built as RTCP transport-cc, so the browser's send-side estimate (GoogCC) can
grow and its simulcast policy turns on the higher layers. REMB stays a ceiling for senders
over their cap.
"""

from __future__ import annotations

from mediaserver.sfu.allocator import Allocation, BitrateMeter, LayerOption, StreamDemand, allocate
from mediaserver.sfu.bwe import BandwidthEstimator
from mediaserver.sfu.egress import EgressQueue, Subscription, SubscriptionSet, fan_out
from mediaserver.sfu.forwarder import (
    DROP_DECISION,
    ForwardDecision,
    Forwarder,
    KeyframeRequestThrottle,
    apply,
    render,
)
from mediaserver.sfu.layers import (
    Av1DdSelector,
    LayerSelector,
    NullSelector,
    SimulcastSelector,
    Vp8TemporalSelector,
    Vp9SvcSelector,
)
from mediaserver.sfu.munger import SeqMunger
from mediaserver.sfu.nack import NackGenerator
from mediaserver.sfu.pacer import Pacer, pacing_rate
from mediaserver.sfu.retransmission import RetransmissionBuffer, RtxParameters
from mediaserver.sfu.twcc import PacketResult, TransportSequencer
from mediaserver.sfu.twcc_feedback import TransportFeedbackGenerator
from mediaserver.sfu.view import PacketView, PacketViewParser, PayloadFormat

__all__ = [
    "DROP_DECISION",
    "Allocation",
    "Av1DdSelector",
    "BandwidthEstimator",
    "BitrateMeter",
    "EgressQueue",
    "ForwardDecision",
    "Forwarder",
    "KeyframeRequestThrottle",
    "LayerOption",
    "LayerSelector",
    "NackGenerator",
    "NullSelector",
    "Pacer",
    "PacketResult",
    "PacketView",
    "PacketViewParser",
    "PayloadFormat",
    "RetransmissionBuffer",
    "RtxParameters",
    "SeqMunger",
    "SimulcastSelector",
    "StreamDemand",
    "Subscription",
    "SubscriptionSet",
    "TransportFeedbackGenerator",
    "TransportSequencer",
    "Vp8TemporalSelector",
    "Vp9SvcSelector",
    "allocate",
    "apply",
    "fan_out",
    "pacing_rate",
    "render",
]
