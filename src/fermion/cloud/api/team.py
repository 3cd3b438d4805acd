"""Product-side routes: team (placeholder until the cloud-products work lands)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
