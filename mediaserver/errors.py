"""The one exception tree of Carillon.

Every error the server raises on purpose derives from :class:`MediaServerError`. Each class
carries, as class attributes, how the two shells report it:

* ``http_status``, ``error_type`` and ``code``: the HTTP status, the ``x-amzn-ErrorType``
  header and the short body ``Code`` of the Chime SDK Meetings error shape
  (``../shared/spec/control-plane-api.md`` section 4);
* ``ws_close_code``: the WebSocket close code the signaling gateway uses
  (``../shared/spec/chime-signaling-protocol.md`` section 6.1).

The HTTP shell and the WebSocket shell each map errors to the wire in exactly one place.

Tree::

    MediaServerError
    ├── ProtocolError                      (abstract; peer or local protocol violations)
    │   ├── LocalProtocolError             (we tried to do something illegal)
    │   └── RemoteProtocolError            (the peer did)
    │       ├── MalformedPacket            (also a ValueError; every binary parser raises it)
    │       └── MalformedMessage           (also a ValueError; signaling frames, JSON bodies)
    ├── InvalidState                       (also a RuntimeError)
    ├── InvalidArgument                    (also a ValueError) → BadRequestException 400
    ├── UnsupportedError                   → BadRequestException 400
    ├── NotFound                           → NotFoundException 404
    │   └── ResourceNotFound               → ResourceNotFoundException 404 (tag operations)
    ├── Conflict                           → ConflictException 409
    ├── UnprocessableEntity                → UnprocessableEntityException 422
    ├── LimitExceeded                      → LimitExceededException 400
    │   └── TooManyTags                    → TooManyTagsException 400
    ├── Throttled                          → ThrottlingException 429
    ├── PermissionDenied                   → ForbiddenException 403
    │   ├── MissingAuthenticationToken     → MissingAuthenticationTokenException 403
    │   ├── UnrecognizedClient             → UnrecognizedClientException 403
    │   ├── InvalidSignature               → InvalidSignatureException 403
    │   └── InvalidToken                   (a bad or deleted join token; close 4403)
    ├── MeetingEnded                       (signaling: close 4410)
    └── ServiceFailure                     → ServiceFailureException 500
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "InvalidArgument",
    "InvalidSignature",
    "InvalidState",
    "InvalidToken",
    "LimitExceeded",
    "LocalProtocolError",
    "MalformedMessage",
    "MalformedPacket",
    "MediaServerError",
    "MeetingEnded",
    "MissingAuthenticationToken",
    "NotFound",
    "PermissionDenied",
    "ProtocolError",
    "RemoteProtocolError",
    "ResourceNotFound",
    "ServiceFailure",
    "Throttled",
    "TooManyTags",
    "UnprocessableEntity",
    "UnrecognizedClient",
    "UnsupportedError",
]


class MediaServerError(Exception):
    """Base class of every error Carillon raises on purpose.

    Args:
        message: a sentence for people; it is sent as the error body's ``Message``.
    """

    http_status: int = 500
    error_type: str = "ServiceFailureException"
    code: str = "ServiceFailure"
    ws_close_code: int = 4500

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message or self.__class__.__name__


class ProtocolError(MediaServerError):
    """A protocol rule was broken (abstract; use a subclass)."""

    http_status = 400
    error_type = "BadRequestException"
    code = "BadRequest"
    ws_close_code = 4400


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""


class MalformedPacket(RemoteProtocolError, ValueError):
    """A binary packet (RTP, RTCP, STUN, DTLS record, payload descriptor) does not parse."""


class MalformedMessage(RemoteProtocolError, ValueError):
    """A message (signaling frame, JSON request body) does not parse or validate."""


class InvalidState(MediaServerError, RuntimeError):
    """An operation was called in a state that does not allow it."""

    http_status = 409
    error_type = "ConflictException"
    code = "Conflict"


class InvalidArgument(MediaServerError, ValueError):
    """A request field is missing, of the wrong type, or outside its constraints."""

    http_status = 400
    error_type = "BadRequestException"
    code = "BadRequest"
    ws_close_code = 4400


class UnsupportedError(MediaServerError):
    """The request is well formed but asks for something Carillon does not do."""

    http_status = 400
    error_type = "BadRequestException"
    code = "BadRequest"


class NotFound(MediaServerError):
    """A meeting, attendee or path does not exist."""

    http_status = 404
    error_type = "NotFoundException"
    code = "NotFound"
    ws_close_code = 4410


class ResourceNotFound(NotFound):
    """The resource named by an ARN in a tag operation does not exist."""

    error_type = "ResourceNotFoundException"
    code = "ResourceNotFound"

    def __init__(self, message: str = "", resource_name: str = "") -> None:
        super().__init__(message)
        self.resource_name = resource_name


class Conflict(MediaServerError):
    """The request conflicts with the current state of the resource."""

    http_status = 409
    error_type = "ConflictException"
    code = "Conflict"


class UnprocessableEntity(MediaServerError):
    """The request is valid but cannot be carried out (for example, a meeting is ending)."""

    http_status = 422
    error_type = "UnprocessableEntityException"
    code = "Unprocessable"


class LimitExceeded(MediaServerError):
    """A quota (attendees per meeting, active meetings, list sizes) would be exceeded."""

    http_status = 400
    error_type = "LimitExceededException"
    code = "ResourceLimitExceeded"
    ws_close_code = 4429


class TooManyTags(LimitExceeded):
    """A resource would carry more than 50 tags."""

    error_type = "TooManyTagsException"
    code = "TooManyTags"

    def __init__(self, message: str = "", resource_name: str = "") -> None:
        super().__init__(message)
        self.resource_name = resource_name


class Throttled(MediaServerError):
    """The caller exceeded the API rate limit."""

    http_status = 429
    error_type = "ThrottlingException"
    code = "Throttling"
    ws_close_code = 4429


class PermissionDenied(MediaServerError):
    """The caller may not do this."""

    http_status = 403
    error_type = "ForbiddenException"
    code = "Forbidden"
    ws_close_code = 4403


class MissingAuthenticationToken(PermissionDenied):
    """The request carries no SigV4 ``Authorization`` header."""

    error_type = "MissingAuthenticationTokenException"
    code = "MissingAuthenticationToken"


class UnrecognizedClient(PermissionDenied):
    """The SigV4 access key id is not the one this server accepts."""

    error_type = "UnrecognizedClientException"
    code = "UnrecognizedClient"


class InvalidSignature(PermissionDenied):
    """The SigV4 signature does not match, or its date is outside the allowed skew."""

    error_type = "InvalidSignatureException"
    code = "InvalidSignature"


class InvalidToken(PermissionDenied):
    """A join token is unknown, does not match its attendee, or was deleted."""


class MeetingEnded(MediaServerError):
    """The meeting does not exist or has ended (signaling close 4410)."""

    http_status = 404
    error_type = "NotFoundException"
    code = "NotFound"
    ws_close_code = 4410


class ServiceFailure(MediaServerError):
    """An unexpected internal failure; reported as 500 without details."""
