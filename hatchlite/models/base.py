"""What every REST model shares: aware UTC datetimes, camelCase aliases, the resource
metadata and page numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


def _as_utc(value: datetime) -> datetime:
    # A naive value has no instant; refusing it beats guessing local time or UTC.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: Hatchet's models hold timezone-aware datetimes")
    return value.astimezone(UTC)


UTCDateTime = Annotated[datetime, AfterValidator(_as_utc)]
"""A timezone-aware datetime, converted to UTC; naive values are refused."""


class _RestModel(BaseModel):
    """Base of the REST models: camelCase aliases, populated by alias or by name."""

    model_config = ConfigDict(
        populate_by_name=True,
        alias_generator=to_camel,
        validate_assignment=True,
        protected_namespaces=(),
    )


# Shared


class APIResourceMeta(_RestModel):
    """`id`, `created_at` and `updated_at` of a resource (its `metadata`)."""

    id: str
    created_at: UTCDateTime
    updated_at: UTCDateTime


class PaginationResponse(_RestModel):
    """Page numbers of a list response."""

    # Hatchet's JSON keys here are snake_case, not camelCase.
    model_config = ConfigDict(alias_generator=None)

    current_page: int | None = None
    next_page: int | None = None
    num_pages: int | None = None
