"""Pieces of bodies that more than one feature uses."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

TeamName = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f]+$")]
