"""FastAPI routers. Each module exposes ``router``; ``routers()`` lists them for the app."""

from __future__ import annotations

from importlib import import_module

from fastapi import APIRouter

# Order matters only where paths overlap; keep specific routes before general ones.
_MODULES = (
    "oauth",
    "tokens",
    "user",
    "devices",
    "device_claims",
    "provisioning",
    "keys",
    "repairs",
    "audit",
    "server_keys",
    "products",
    "customers",
    "clients",
    "team",
)


def routers() -> list[APIRouter]:
    return [import_module(f"{__name__}.{name}").router for name in _MODULES]
