"""Our request shapes agree with the botocore model (a test-time oracle, not vendored)."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from hypothesis import given, settings, strategies as st

from mediaserver.control import shapes
from mediaserver.control.schema import Bool, Int, ListOf, Shape, Str, Struct, validate
from mediaserver.errors import InvalidArgument

MODEL = botocore.session.get_session().get_service_model("chime-sdk-meetings")

OURS = {
    "CreateMeeting": shapes.CREATE_MEETING,
    "CreateMeetingWithAttendees": shapes.CREATE_MEETING_WITH_ATTENDEES,
    "CreateAttendee": shapes.CREATE_ATTENDEE,
    "BatchCreateAttendee": shapes.BATCH_CREATE_ATTENDEE,
    "UpdateAttendeeCapabilities": shapes.UPDATE_CAPABILITIES,
    "BatchUpdateAttendeeCapabilitiesExcept": shapes.BATCH_UPDATE_CAPABILITIES_EXCEPT,
    "StartMeetingTranscription": shapes.START_TRANSCRIPTION,
    "TagResource": shapes.TAG_RESOURCE,
    "UntagResource": shapes.UNTAG_RESOURCE,
}


def _compare(ours: Shape, model: Any, where: str) -> None:
    meta = model.metadata
    if model.type_name == "structure":
        assert isinstance(ours, Struct), where
        body = {k: v for k, v in model.members.items() if not v.serialization.get("location")}
        assert set(ours.members) == set(body), where
        required = set(meta.get("required", [])) & set(body)
        assert set(ours.required) == required, where
        for name, member in body.items():
            _compare(ours.members[name], member, f"{where}.{name}")
    elif model.type_name == "list":
        assert isinstance(ours, ListOf), where
        assert (ours.min, ours.max) == (meta.get("min"), meta.get("max")), where
        _compare(ours.item, model.member, f"{where}[]")
    elif model.type_name == "string":
        assert isinstance(ours, Str), where
        assert ours.min == meta.get("min"), where
        assert ours.max == meta.get("max"), where
        if "enum" in meta:
            assert list(ours.enum or []) == meta["enum"], where
        if "pattern" in meta:
            assert ours.pattern == meta["pattern"], where
    elif model.type_name == "integer":
        assert isinstance(ours, Int), where
        assert (ours.min, ours.max) == (meta.get("min"), meta.get("max")), where
    elif model.type_name == "boolean":
        assert isinstance(ours, Bool), where
    else:  # pragma: no cover
        raise AssertionError(f"{where}: unexpected type {model.type_name}")


@pytest.mark.parametrize("operation", sorted(OURS))
def test_shape_matches_the_model(operation: str) -> None:
    _compare(OURS[operation], MODEL.operation_model(operation).input_shape, operation)


def test_the_model_has_sixteen_operations() -> None:
    assert len(MODEL.operation_names) == 16


@settings(max_examples=300)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["ExternalMeetingId", "MediaRegion", "ClientRequestToken",
                                       "MeetingFeatures", "Tags", "Key", "Value", "Audio",
                                       "TenantIds", "x"]), children, max_size=5),
    max_leaves=20,
))  # fmt: skip
def test_validation_accepts_or_raises_invalid_argument(body: object) -> None:
    try:
        validate(shapes.CREATE_MEETING, body)
    except InvalidArgument as exc:
        assert str(exc)
