"""Server-side AWS Signature Version 4 verification (sans-I/O, stdlib only).

The stock AWS SDKs (boto3, the AWS CLI, aws-sdk-js-v3) sign every Chime SDK call with SigV4
under the signing name ``chime`` (``control-plane-api.md`` section 8). :func:`verify_request`
recomputes the signature from what the HTTP shell received and either returns the
:class:`VerifiedCaller` or raises one of the three auth errors of ``control-plane-api.md``
section 4:

* :class:`~mediaserver.errors.MissingAuthenticationToken`: no ``Authorization`` header at all;
* :class:`~mediaserver.errors.UnrecognizedClient`: the access key id is not configured;
* :class:`~mediaserver.errors.InvalidSignature`: everything else (malformed header or scope,
  wrong service or region, missing or out-of-window date, payload hash mismatch, signature
  mismatch). For clock skew the message starts with ``"Signature expired: "``, mirroring AWS.

Nothing else ever escapes: whatever the headers, path or query contain, the function returns
or raises a :class:`~mediaserver.errors.PermissionDenied` subclass.

Rules of this file:

* The function never reads a clock. ``now`` is wall-clock epoch seconds, from ``Clock.wall()``.
* The shell passes the request exactly as received: ``raw_path`` and ``raw_query`` are the two
  halves of the request target split at the first ``?``, still percent-encoded (ASGI
  ``scope["raw_path"]`` and ``scope["query_string"]``, aiohttp ``request.raw_path``), never the
  decoded path. Headers are passed in any case, repeated headers as repeated pairs, and
  ``Host`` unchanged. Text is the received bytes decoded as Latin-1 (the ASGI and WSGI
  convention), so that non-ASCII bytes survive exactly; in practice clients send ASCII.
* Decisions beyond the AWS documentation are listed in :func:`verify_request`.

Reference: "Create a signed AWS API request" and "Elements of an AWS API request signature" in
the AWS IAM User Guide (SigV4), and ``control-plane-api.md`` section 8.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote, quote_from_bytes, unquote_to_bytes

from mediaserver.errors import InvalidSignature, MissingAuthenticationToken, UnrecognizedClient

__all__ = [
    "ALGORITHM",
    "MAX_CLOCK_SKEW",
    "VerifiedCaller",
    "sign_request",
    "verify_request",
]

ALGORITHM = "AWS4-HMAC-SHA256"
"""The only signing algorithm accepted (SigV4 with HMAC-SHA256)."""

MAX_CLOCK_SKEW = 15 * 60.0
"""Largest accepted distance, in seconds, between ``x-amz-date`` and ``now`` (section 8, step 3)."""

_TERMINATOR = "aws4_request"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HEX = frozenset("0123456789abcdef")
# Characters that need no percent-encoding anywhere in a canonical URI or query. RFC 3986 section
# 2.3 "unreserved" plus "/" (kept in paths); when a path has nothing else, it is already canonical.
_PATH_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~/")
_QUERY_PLAIN = _PATH_PLAIN - {"/"}


@dataclass(frozen=True, slots=True)
class VerifiedCaller:
    """Who signed a request whose SigV4 signature checked out.

    Attributes:
        access_key_id: the access key id from the credential scope.
        region: the region from the credential scope (the client's ``region_name``).
        date: the scope date, ``YYYYMMDD``.
        signed_at: the ``x-amz-date`` of the request, as epoch seconds.
        security_token: the signed ``x-amz-security-token`` value, if the client sent one. Carillon
            issues no session tokens and does not interpret it (see :func:`verify_request`).
    """

    access_key_id: str
    region: str
    date: str
    signed_at: float
    security_token: str | None = None


def verify_request(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    now: float,
    secrets: Mapping[str, str],
    service: str = "chime",
    allowed_regions: Collection[str] | None = None,
    max_skew: float = MAX_CLOCK_SKEW,
) -> VerifiedCaller:
    """Verify the SigV4 ``Authorization`` header of one request.

    Implements the server algorithm of ``control-plane-api.md`` section 8: parse the header, look up
    the secret, check the time, build the canonical request, derive the signing key and compare.

    Decisions beyond the AWS documentation:

    * Only header authentication is supported. Query-string (presigned) authentication is treated
      like a missing header: no Chime SDK client presigns.
    * ``x-amz-date`` is required and must be signed; the ``Date`` fallback of SigV4 is not accepted
      (no Chime SDK client uses it). ``host`` must be signed. SignedHeaders must be lower case,
      sorted and free of duplicates, as every signer emits it.
    * ``x-amz-content-sha256`` is optional (botocore omits it, JS v3 sends it). When present it
      must equal the hex SHA-256 of the body; ``UNSIGNED-PAYLOAD`` and the streaming variants
      are rejected.
    * ``x-amz-security-token`` is accepted when it is signed and reported in
      :attr:`VerifiedCaller.security_token`. Carillon issues no session tokens, so its value is not
      checked: the long-term secret alone authenticates the caller. An unsigned token is rejected,
      so that a token can never be attached to a request by a third party.
    * Empty segments of the query string (``a=1&&b=2``) are ignored.
    * Skew beyond ``max_skew`` in either direction gives "Signature expired: ..."; AWS words
      the future case "Signature not yet current", one prefix is simpler to match.
    * Malformed headers get :class:`InvalidSignature`, where AWS would answer
      ``IncompleteSignatureException``, which is not in our error tree.

    Args:
        method: the request method, e.g. ``"POST"``.
        raw_path: the request path as received, still percent-encoded, without the query.
        raw_query: the query string as received, without the ``?``; ``""`` if none.
        headers: the request headers as received: any case, repeated headers as repeated pairs.
        body: the complete request body.
        now: wall-clock time, in seconds since the Unix epoch.
        secrets: access key id to secret access key.
        service: the signing name the credential scope must carry.
        allowed_regions: the regions the credential scope may name; ``None`` accepts any.
        max_skew: the largest accepted distance between ``x-amz-date`` and ``now``, in seconds.

    Returns:
        The verified caller.

    Raises:
        MissingAuthenticationToken: the request has no ``Authorization`` header.
        UnrecognizedClient: the access key id is not in ``secrets``.
        InvalidSignature: the header is malformed, the scope or date is wrong, the payload hash does
            not match, or the signature does not match.
    """
    # Index the headers once by lower-case name, keeping repeated values in arrival order.
    by_name: dict[str, list[str]] = {}
    for name, value in headers:
        lower = name.lower()
        values = by_name.get(lower)
        if values is None:
            by_name[lower] = [value]
        else:
            values.append(value)

    # Step 1: parse "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...".
    authorizations = by_name.get("authorization")
    if not authorizations or not authorizations[0].strip():
        raise MissingAuthenticationToken("Missing Authentication Token")
    if len(authorizations) > 1:
        raise InvalidSignature("The request carries more than one Authorization header.")
    algorithm, _, components = authorizations[0].strip().partition(" ")
    if algorithm != ALGORITHM:
        raise InvalidSignature(f"Unsupported AWS 'algorithm': only {ALGORITHM} is accepted.")
    credential, signed_headers, signature = _split_components(components)

    scope_parts = credential.split("/")
    if len(scope_parts) != 5:
        raise InvalidSignature(
            "Credential should be of the form <access key>/<date>/<region>/<service>/aws4_request."
        )
    access_key_id, scope_date, region, scope_service, terminator = scope_parts
    if not access_key_id:
        raise InvalidSignature("Credential should carry an access key id.")
    if terminator != _TERMINATOR:
        raise InvalidSignature(
            f"Credential should be scoped with a valid terminator: '{_TERMINATOR}'."
        )
    if scope_service != service:
        raise InvalidSignature(f"Credential should be scoped to correct service: '{service}'.")
    if not region or (allowed_regions is not None and region not in allowed_regions):
        raise InvalidSignature("Credential should be scoped to a valid region.")
    if len(signature) != 64 or not _HEX.issuperset(signature):
        raise InvalidSignature("Signature should be 64 lower-case hexadecimal digits.")
    signed_names = signed_headers.split(";")
    if signed_names != sorted(set(signed_names)) or signed_headers != signed_headers.lower():
        raise InvalidSignature("SignedHeaders should be lower case, sorted and unique.")
    if "host" not in signed_names:
        raise InvalidSignature("SignedHeaders should include 'host'.")
    if "x-amz-date" not in signed_names:
        raise InvalidSignature("SignedHeaders should include 'x-amz-date'.")

    # Step 2: look up the secret.
    secret = secrets.get(access_key_id)
    if secret is None:
        raise UnrecognizedClient("The security token included in the request is invalid.")

    # Step 3: check the time, against the clock and against the scope.
    amz_dates = by_name.get("x-amz-date")
    if amz_dates is None or len(amz_dates) != 1:
        raise InvalidSignature("The request should carry exactly one 'X-Amz-Date' header.")
    amz_date = amz_dates[0].strip()
    signed_at = _parse_amz_date(amz_date)
    if abs(now - signed_at) > max_skew:
        raise InvalidSignature(_expired_message(amz_date, signed_at, now, max_skew))
    if scope_date != amz_date[:8]:
        raise InvalidSignature(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
            f"HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'."
        )

    security_token: str | None = None
    tokens = by_name.get("x-amz-security-token")
    if tokens is not None:
        if "x-amz-security-token" not in signed_names:
            raise InvalidSignature("'X-Amz-Security-Token' should be a signed header.")
        security_token = ",".join(tokens)

    # Step 4.6: the payload hash. x-amz-content-sha256, when sent, is what the client signed; it
    # must also be the actual hash, or the body could be swapped under a valid signature.
    payload_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
    claimed_hashes = by_name.get("x-amz-content-sha256")
    if claimed_hashes is not None:
        claimed = ",".join(claimed_hashes).strip()
        if claimed == "UNSIGNED-PAYLOAD" or claimed.startswith("STREAMING-"):
            raise InvalidSignature("Unsigned or streaming payloads are not accepted.")
        if claimed != payload_hash:
            raise InvalidSignature(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            )

    # Steps 4.1 to 4.5: the canonical request.
    lines = [method.upper(), _canonical_uri(raw_path), _canonical_query(raw_query)]
    for name in signed_names:
        values = by_name.get(name)
        if values is None:
            raise InvalidSignature(f"Signed header '{name}' is missing from the request.")
        # "Trimall": strip, and collapse inner runs of whitespace to one space.
        if len(values) == 1:
            lines.append(name + ":" + " ".join(values[0].split()))
        else:
            lines.append(name + ":" + ",".join(" ".join(v.split()) for v in values))
    lines.append("")
    lines.append(signed_headers)
    lines.append(payload_hash)
    canonical_request = "\n".join(lines)

    # Steps 5 to 7: string to sign, signing key, then compare in constant time.
    expected = _signature(canonical_request, amz_date, secret, scope_date, region, service)
    if not hmac.compare_digest(expected, signature):
        raise InvalidSignature(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return VerifiedCaller(
        access_key_id=access_key_id,
        region=region,
        date=scope_date,
        signed_at=signed_at,
        security_token=security_token,
    )


def _split_components(components: str) -> tuple[str, str, str]:
    """Return Credential, SignedHeaders and Signature from the header after the algorithm.

    Components are separated by ``,`` with optional spaces, in any order, each exactly once.
    """
    found: dict[str, str] = {}
    for component in components.split(","):
        key, equals, value = component.strip().partition("=")
        if not equals or key in found:
            raise InvalidSignature(
                "Authorization header components should be Credential=, SignedHeaders= and "
                "Signature=, each once."
            )
        found[key] = value
    try:
        credential = found.pop("Credential")
        signed_headers = found.pop("SignedHeaders")
        signature = found.pop("Signature")
    except KeyError as exc:
        raise InvalidSignature(f"Authorization header requires {exc} parameter.") from None
    if found:
        raise InvalidSignature("Authorization header has unknown components.")
    return credential, signed_headers, signature


def _parse_amz_date(amz_date: str) -> float:
    """Return the epoch seconds of an ISO 8601 basic ``YYYYMMDDTHHMMSSZ`` timestamp."""
    if (
        len(amz_date) != 16
        or amz_date[8] != "T"
        or amz_date[15] != "Z"
        or not (amz_date[:8] + amz_date[9:15]).isascii()
        or not (amz_date[:8] + amz_date[9:15]).isdigit()
    ):
        raise InvalidSignature("'X-Amz-Date' should be an ISO 8601 basic timestamp.")
    year, month, day = int(amz_date[0:4]), int(amz_date[4:6]), int(amz_date[6:8])
    hour, minute, second = int(amz_date[9:11]), int(amz_date[11:13]), int(amz_date[13:15])
    if not (
        year >= 1
        and 1 <= month <= 12
        and 1 <= day <= calendar.monthrange(year, month)[1]
        and hour <= 23
        and minute <= 59
        and second <= 59
    ):
        raise InvalidSignature("'X-Amz-Date' should be an ISO 8601 basic timestamp.")
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def _format_amz_date(epoch: float) -> str:
    """Return ``epoch`` as an ISO 8601 basic timestamp, for error messages."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y%m%dT%H%M%SZ")


def _expired_message(amz_date: str, signed_at: float, now: float, max_skew: float) -> str:
    """Build the clock-skew message in AWS's words, for requests too old or too new.

    AWS says "Signature not yet current" for requests from the future; Carillon uses one prefix,
    "Signature expired", for both directions so that shells and clients match a single string.
    """
    minutes = f"{max_skew / 60:g} min."
    now_text = _format_amz_date(now)
    if signed_at < now:
        limit = _format_amz_date(now - max_skew)
        return f"Signature expired: {amz_date} is now earlier than {limit} ({now_text} - {minutes})"
    limit = _format_amz_date(now + max_skew)
    return f"Signature expired: {amz_date} is now later than {limit} ({now_text} + {minutes})"


def _canonical_uri(raw_path: str) -> str:
    """Return the canonical URI: dot segments removed, then percent-encoded a second time.

    Every SigV4 service except S3 signs the already-encoded path encoded again, keeping ``/`` and
    ``~`` (section 8, step 4.2), so ``arn%3Aaws`` becomes ``arn%253Aaws``. Like botocore and
    ``@smithy/signature-v4``, empty segments (``//``) are dropped along with ``.`` and ``..``
    (RFC 3986 section 5.2.4).
    """
    if "//" in raw_path or "/." in raw_path or not raw_path.startswith("/"):
        segments: list[str] = []
        for segment in raw_path.split("/"):
            if not segment or segment == ".":
                continue
            if segment == "..":
                if segments:
                    segments.pop()
            else:
                segments.append(segment)
        leading = "/" if raw_path.startswith("/") else ""
        trailing = "/" if segments and raw_path.endswith("/") else ""
        raw_path = leading + "/".join(segments) + trailing or "/"
    if _PATH_PLAIN.issuperset(raw_path):
        return raw_path
    try:
        # Latin-1 turns the shell's text back into the bytes received, so a raw non-ASCII byte
        # is encoded as itself (PEP 3333 convention for request targets).
        return quote(raw_path, safe="/~", encoding="latin-1")
    except UnicodeError:
        raise InvalidSignature("The request path is not valid.") from None


def _canonical_query(raw_query: str) -> str:
    """Return the canonical query string (section 8, step 4.3).

    Each name and value is percent-decoded to bytes (``+`` stays ``+``) and encoded again with only
    ``A-Z a-z 0-9 - _ . ~`` left as they are; pairs are sorted by name, then value. A name without
    ``=`` gets an empty value.
    """
    if not raw_query:
        return ""
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_canonical_query_component(name), _canonical_query_component(value)))
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def _canonical_query_component(text: str) -> str:
    """Percent-decode ``text`` to bytes and encode it again with the SigV4 unreserved set."""
    if _QUERY_PLAIN.issuperset(text):
        return text
    try:
        return quote_from_bytes(unquote_to_bytes(text.encode("latin-1")), safe="-_.~")
    except UnicodeError:
        raise InvalidSignature("The request query string is not valid.") from None


@lru_cache(maxsize=256)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """Derive the SigV4 signing key (section 8, step 6), cached per secret, date and region.

    A key is valid for one day, so a server sees a handful of distinct arguments per access key;
    the bounded cache turns four HMACs per request into a dictionary lookup.
    """
    k_date = hmac.digest(("AWS4" + secret).encode("utf-8"), date.encode("ascii"), "sha256")
    k_region = hmac.digest(k_date, region.encode("utf-8", "surrogatepass"), "sha256")
    k_service = hmac.digest(k_region, service.encode("utf-8"), "sha256")
    return hmac.digest(k_service, _TERMINATOR.encode("ascii"), "sha256")


def _signature(
    canonical_request: str, amz_date: str, secret: str, date: str, region: str, service: str
) -> str:
    """Steps 5 and 6 of section 8: the string to sign and its HMAC with the signing key."""
    string_to_sign = "\n".join(
        (
            ALGORITHM,
            amz_date,
            f"{date}/{region}/{service}/{_TERMINATOR}",
            hashlib.sha256(canonical_request.encode("utf-8", "surrogatepass")).hexdigest(),
        )
    )
    key = _signing_key(secret, date, region, service)
    return hmac.digest(key, string_to_sign.encode("utf-8", "surrogatepass"), "sha256").hex()


def sign_request(
    *,
    method: str,
    host: str,
    raw_path: str,
    raw_query: str,
    body: bytes,
    now: float,
    access_key_id: str,
    secret: str,
    region: str,
    service: str = "chime",
) -> list[tuple[str, str]]:
    """Sign a request as botocore does (``host;x-amz-date`` plus ``content-type`` with a body).

    Used by Carillon's own clients (the bench bots); the verifier above is the server side of
    the same algorithm, and the tests cross-check both against botocore.

    Returns:
        The headers to send: ``Host``, ``X-Amz-Date``, ``Content-Type`` when there is a body,
        and ``Authorization``.
    """
    amz_date = _format_amz_date(now)
    date = amz_date[:8]
    headers = [("host", host), ("x-amz-date", amz_date)]
    if body:
        headers.insert(0, ("content-type", "application/json"))
    signed_headers = ";".join(name for name, _ in headers)
    payload_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
    canonical_request = "\n".join(
        [
            method.upper(),
            _canonical_uri(raw_path),
            _canonical_query(raw_query),
            *(f"{name}:{value}" for name, value in headers),
            "",
            signed_headers,
            payload_hash,
        ]
    )
    signature = _signature(canonical_request, amz_date, secret, date, region, service)
    authorization = (
        f"{ALGORITHM} Credential={access_key_id}/{date}/{region}/{service}/{_TERMINATOR}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return [*headers, ("authorization", authorization)]
