"""One real cloud per test module, seeded with a product team; Chromium from Debian."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.cloud import admin

from .harness import CHROMIUM, PASSWORD, Cloud, start_cloud, stop_cloud

OWNER = "owner@example.com"
DEVELOPER = "dev@example.com"
VIEWER = "viewer@example.com"
CUSTOMER = "customer5@mycompany.com"
PRODUCT = "Console Fleet"

pytestmark = pytest.mark.integration


def seeded_cloud(home: Path, database_url: str | None = None) -> Iterator[Cloud]:
    """A running cloud with a product whose team has an owner, a developer and a View-only
    member, a two-legged server client and one two-legged customer."""
    cloud = start_cloud(home, database_url)
    try:
        for email in (OWNER, DEVELOPER, VIEWER):
            cloud.admin(admin.create_user, email, PASSWORD)
        product = cloud.admin(admin.create_product, PRODUCT, OWNER, "photon")
        cloud.product, cloud.product_id = product.slug, product.id
        cloud.admin(admin.set_member_role, product.slug, DEVELOPER, "developer")
        cloud.admin(admin.set_member_role, product.slug, VIEWER, "view_only")
        cloud.client_id, cloud.client_secret = cloud.admin(
            admin.create_client, product.slug, "Console test server", "server"
        )
        cloud.admin(admin.create_customer, product.slug, CUSTOMER, None)
        yield cloud
    finally:
        stop_cloud(cloud)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    yield from seeded_cloud(tmp_path_factory.mktemp("console-cloud"))


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p
