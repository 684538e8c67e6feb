"""The audit log's body and filters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel


class AuditEventOut(BaseModel):
    id: int
    actor_user_id: uuid.UUID | None
    action: str
    target: str
    details: dict
    request_id: str | None
    created_at: datetime


def _storable_time(value: datetime) -> datetime:
    # As UTC, a year outside this range cannot be read back into a Python datetime; a time
    # without a zone is UTC.
    if not 1970 <= value.year <= 9998:
        raise ValueError("a date from 1970 to 9998")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


StorableTime = Annotated[datetime, AfterValidator(_storable_time)]
AUDIT_ACTION = r"^[a-z_.]{1,64}$"
