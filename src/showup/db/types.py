"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, timezone-aware UTC datetimes out.

    SQLite has no time zones: values are stored as UTC text in a fixed format, so they
    still sort and compare correctly. Naive datetimes are refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # SQLite: the same text SQLAlchemy's DATETIME would store for the naive UTC value
        # ("YYYY-MM-DD HH:MM:SS.ffffff", its default storage format), in one C call instead
        # of process_bind_param followed by DATETIME's %-formatting of seven fields. A sync
        # binds four datetimes per event row. tests/db/test_types.py checks the equality.
        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTCDateTime column")
            # isoformat of an aware UTC datetime ends in "+00:00": cut it off.
            return value.astimezone(UTC).isoformat(" ", "microseconds")[:-6]

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType: Any = JSON().with_variant(JSONB(), "postgresql")


class JSONText:
    """A value the caller has already serialized to JSON text, for a :class:`JSONDocument`
    column: bound as is, not serialized again. The text must be valid JSON (PostgreSQL
    checks; SQLite stores what it is given)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JSONText) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"JSONText({self.text!r})"


class JSONDocument(TypeDecorator[Any]):
    """JSON on SQLite, JSONB on PostgreSQL (the same columns as :data:`JSONType`), that
    also accepts :class:`JSONText`.

    A sync hashes each event's JSON text for its fingerprint (``sync/plan.py``); binding
    that same text saves serializing the payload a second time. Any other value is
    serialized as JSON/JSONB would; reads return the decoded value either way.
    """

    impl = JSON
    cache_ok = True
    # As JSON's: a dict is not hashable (ORM row uniquing), and None is JSON null.
    hashable = False
    should_evaluate_none = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        # Not process_bind_param: JSONText must skip the JSON type's own serializer.
        serialize = self.impl_instance.bind_processor(dialect)

        def process(value: Any) -> Any:
            if type(value) is JSONText:
                return value.text
            return serialize(value) if serialize is not None else value

        return process
