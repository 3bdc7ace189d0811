"""Declarative validation of Chime SDK Meetings request bodies.

The shapes, lengths, patterns and enums come from ``../shared/spec/control-plane-api.md``
section 3 ("Field constraints", "Enums"). The AWS SDKs validate almost nothing (section 0,
point 4), so the server checks everything. Errors read like the AWS service's own
validation messages: ``1 validation error detected: Value 'x' at 'externalMeetingId'
failed to satisfy constraint: Member must have length greater than or equal to 2``.

Rules of this file:

* A validator returns the value unchanged or raises :class:`InvalidArgument`; it never
  coerces types (``"5"`` is not an integer, ``1`` is not a boolean).
* Patterns are matched against the whole value (``re.fullmatch``), as the service does.
* Unknown members are an error: a request with a field the model does not have is rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mediaserver.errors import InvalidArgument

__all__ = [
    "Bool",
    "Int",
    "ListOf",
    "Shape",
    "Str",
    "Struct",
    "validate",
]


def _path_name(path: str) -> str:
    # AWS names members in camelCase in its messages ("externalMeetingId").
    return path


def _fail(path: str, value: object, constraint: str) -> InvalidArgument:
    shown = value if isinstance(value, (str, int, float, bool)) else type(value).__name__
    return InvalidArgument(
        f"1 validation error detected: Value '{shown}' at '{_path_name(path)}' "
        f"failed to satisfy constraint: {constraint}"
    )


class Shape:
    """Base of the validators."""

    def check(self, value: object, path: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Str(Shape):
    """A string with optional length bounds, whole-value pattern and enum."""

    min: int | None = None
    max: int | None = None
    pattern: str | None = None
    enum: Sequence[str] | None = None
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            object.__setattr__(self, "_regex", re.compile(self.pattern))

    def check(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise _fail(path, value, "Member must be a string")
        if self.min is not None and len(value) < self.min:
            raise _fail(path, value, f"Member must have length greater than or equal to {self.min}")
        if self.max is not None and len(value) > self.max:
            raise _fail(path, value, f"Member must have length less than or equal to {self.max}")
        if self._regex is not None and self._regex.fullmatch(value) is None:
            raise _fail(
                path, value, f"Member must satisfy regular expression pattern: {self.pattern}"
            )
        if self.enum is not None and value not in self.enum:
            raise _fail(
                path, value, f"Member must satisfy enum value set: [{', '.join(self.enum)}]"
            )
        return value


@dataclass(frozen=True, slots=True)
class Int(Shape):
    """An integer (JSON number without fraction, not a boolean) with optional bounds."""

    min: int | None = None
    max: int | None = None

    def check(self, value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, value, "Member must be an integer")
        if self.min is not None and value < self.min:
            raise _fail(path, value, f"Member must have value greater than or equal to {self.min}")
        if self.max is not None and value > self.max:
            raise _fail(path, value, f"Member must have value less than or equal to {self.max}")
        return value


@dataclass(frozen=True, slots=True)
class Bool(Shape):
    """A JSON boolean."""

    def check(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise _fail(path, value, "Member must be a boolean")
        return value


@dataclass(frozen=True, slots=True)
class ListOf(Shape):
    """A JSON array of one item shape, with optional length bounds."""

    item: Shape
    min: int | None = None
    max: int | None = None

    def check(self, value: object, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise _fail(path, value, "Member must be a list")
        if self.min is not None and len(value) < self.min:
            raise _fail(
                path, len(value), f"Member must have length greater than or equal to {self.min}"
            )
        if self.max is not None and len(value) > self.max:
            raise _fail(
                path, len(value), f"Member must have length less than or equal to {self.max}"
            )
        return [self.item.check(v, f"{path}.{i + 1}.member") for i, v in enumerate(value)]


@dataclass(frozen=True, slots=True)
class Struct(Shape):
    """A JSON object with known members; ``required`` lists the mandatory ones."""

    members: Mapping[str, Shape]
    required: frozenset[str] = frozenset()

    def check(self, value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(path, value, "Member must be a structure")
        for key in value:
            if key not in self.members:
                where = f"{path}.{key}" if path else key
                raise InvalidArgument(f"Unknown member '{where}' in the request")
        out: dict[str, Any] = {}
        for name, shape in self.members.items():
            member_path = f"{path}.{_camel(name)}" if path else _camel(name)
            if name not in value or value[name] is None:
                if name in self.required:
                    raise _fail(member_path, "null", "Member must not be null")
                continue
            out[name] = shape.check(value[name], member_path)
        return out


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def validate(shape: Struct, body: object) -> dict[str, Any]:
    """Validate a decoded JSON request body against ``shape``.

    Raises:
        InvalidArgument: with the AWS-style message naming the first failing member.
    """
    return shape.check(body, "")
