"""Keyset cursor pagination in Recall's ``{next, previous, results}`` shape.

A cursor is an opaque token holding the sort key of the row it stands after (``n``) or
before (``p``). Keyset paging never skips a row that exists for the whole walk; a row that
changes its sort key mid-walk (an event updated again) may be seen twice, never missed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlencode

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from showup.api.errors import bad_request

T = TypeVar("T")
Direction = Literal["n", "p"]


@dataclass(frozen=True, slots=True)
class Cursor:
    key: tuple[str, str]  # (iso datetime, id)
    direction: Direction

    def encode(self) -> str:
        raw = json.dumps({"k": list(self.key), "d": self.direction}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            pad = "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(token + pad))
            key = data["k"]
            direction = data["d"]
            if (
                not isinstance(key, list)
                or len(key) != 2
                or not all(isinstance(k, str) for k in key)
                or direction not in ("n", "p")
            ):
                raise ValueError
            datetime.fromisoformat(key[0])
            return cls((key[0], key[1]), direction)
        except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
            raise bad_request("invalid_cursor", "The cursor is not valid.", "cursor") from None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    results: list[T]
    next_cursor: str | None
    previous_cursor: str | None


async def paginate(
    session: AsyncSession,
    query: Select[T],
    *,
    time_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[str],
    key_of: Callable[[T], tuple[datetime, str]],
    cursor: str | None,
    page_size: int,
) -> Page[T]:
    cur = Cursor.decode(cursor) if cursor else None
    if cur is not None:
        t = datetime.fromisoformat(cur.key[0])
        ident = cur.key[1]
        if cur.direction == "n":
            query = query.where(or_(time_col > t, and_(time_col == t, id_col > ident)))
        else:
            query = query.where(or_(time_col < t, and_(time_col == t, id_col < ident)))
    backwards = cur is not None and cur.direction == "p"
    order = (time_col.desc(), id_col.desc()) if backwards else (time_col.asc(), id_col.asc())
    rows: Sequence[T] = (await session.scalars(query.order_by(*order).limit(page_size + 1))).all()
    more = len(rows) > page_size
    items = list(rows[:page_size])
    if backwards:
        items.reverse()

    def token(row: T, direction: Direction) -> str:
        t, ident = key_of(row)
        return Cursor((t.isoformat(), ident), direction).encode()

    next_cursor = previous_cursor = None
    if items:
        if backwards:
            next_cursor = token(items[-1], "n")
            previous_cursor = token(items[0], "p") if more else None
        else:
            next_cursor = token(items[-1], "n") if more else None
            previous_cursor = token(items[0], "p") if cur is not None else None
    elif cur is not None:
        # Walked off either end: offer the way back.
        flipped: Direction = "p" if cur.direction == "n" else "n"
        back = Cursor(cur.key, flipped).encode()
        next_cursor, previous_cursor = (back, None) if backwards else (None, back)
    return Page(items, next_cursor, previous_cursor)


def page_url(base_url: str, params: dict[str, Any], cursor: str | None) -> str | None:
    if cursor is None:
        return None
    query = {k: v for k, v in params.items() if v is not None and k != "cursor"}
    query["cursor"] = cursor
    return f"{base_url}?{urlencode(query, doseq=True)}"
