"""Test harness: a real ``fermion serve`` on loopback, over SQLite and over PostgreSQL.

Each test module gets its own server and its own database (a fresh SQLite file, or a fresh
PostgreSQL database) so that parallel helpers and modules never see each other's data. Every
test that uses ``cloud`` runs once per backend.

The server, the backends, ports and the device handshake are the shared harness's
(``tests/harness``); this module adds the operator's shortcuts and keeps the names the cloud's
tests (and others) import from it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select, update

import harness
from fermion.cloud import admin
from fermion.cloud.store import Store
from fermion.cloud.store.models import Device, KeyCandidate, OwnerKind, User
from fermion.cloud.tokens import TokenOwner, mint
from fermion.keys import load_key, public_key_der
from harness import (
    BACKENDS,
    PG_ENV,
    Server,
    device_handshake,
    device_pub_pem,
    free_port,
    fresh_database,
    new_device_id,
    pg_admin_url,
    running_server,
)

__all__ = [
    "BACKENDS",
    "PASSWORD",
    "PG_ENV",
    "Cloud",
    "Server",
    "device_handshake",
    "device_pub_pem",
    "free_port",
    "fresh_database",
    "new_device_id",
    "pg_admin_url",
    "running_server",
]

PASSWORD = "correct-horse-battery"
HERE = Path(__file__).parent


@dataclass
class Cloud(harness.Cloud):
    """A running cloud plus shortcuts to populate it the way an operator would."""

    # --- people and products -------------------------------------------------------------

    def user(self, email: str | None = None, password: str | None = None) -> str:
        """A new user; without a password unless one is given (argon2 is slow on purpose,
        and only the login tests need to pay for it)."""
        email = email or f"user-{secrets.token_hex(4)}@example.com"
        self.run(admin.create_user, email, password)
        return email

    def token_for(self, email: str) -> str:
        """A token for an existing user, minted the way /oauth/token mints one."""

        async def mint_one(store: Store) -> str:
            async with store.write() as session:
                user_id = await session.scalar(select(User.id).where(User.email == email))
                assert user_id is not None, email
                minted = await mint(
                    session,
                    TokenOwner(OwnerKind.USER, user_id=user_id),
                    client_name="particle",
                    expires_in=None,
                    actor=f"user:{email}",
                )
            return minted.access_token

        return self.run(mint_one)

    def login(self, email: str, password: str = PASSWORD, **extra: str) -> str:
        reply = httpx.post(
            f"{self.base_url}/oauth/token",
            data={
                "grant_type": "password",
                "username": email,
                "password": password,
                "client_id": "particle",
                "client_secret": "particle",
                **extra,
            },
        )
        assert reply.status_code == 200, reply.text
        return reply.json()["access_token"]

    def user_token(self) -> tuple[str, str]:
        email = self.user()
        return email, self.token_for(email)

    def product(self, owner_email: str, platform: str = "photon") -> int:
        product = self.run(admin.create_product, f"P {secrets.token_hex(3)}", owner_email, platform)
        return product.id

    def member(self, product_id: int, role: str) -> tuple[str, str]:
        """A new user with ``role`` in the product (a product has one owner: see ``product``)."""
        assert role != "owner", "the owner is the user the product was created for"
        email = self.user()
        self.run(admin.set_member_role, str(product_id), email, role)
        return email, self.token_for(email)

    def two_legged_client(self, product_id: int) -> tuple[str, str]:
        return self.run(admin.create_client, str(product_id), "server", "server")

    def customer(
        self, product_id: int, email: str | None = None, password: str | None = None
    ) -> str:
        email = email or f"customer-{secrets.token_hex(4)}@example.com"
        self.run(admin.create_customer, str(product_id), email, password)
        return email

    def customer_token(self, client: tuple[str, str], email: str) -> str:
        reply = httpx.post(
            f"{self.base_url}/oauth/token",
            auth=client,
            data={"grant_type": "client_credentials", "scope": f"customer={email}"},
        )
        assert reply.status_code == 200, reply.text
        return reply.json()["access_token"]

    def product_token(self, client: tuple[str, str]) -> str:
        reply = httpx.post(
            f"{self.base_url}/oauth/token", auth=client, data={"grant_type": "client_credentials"}
        )
        assert reply.status_code == 200, reply.text
        return reply.json()["access_token"]

    def add_candidate(self, device_id: str, pem: str, proven: bool = True) -> int:
        """Record a key the device presented, as the device server does on a mismatch."""

        async def add(store: Store) -> int:
            loaded = load_key(pem.encode(), "candidate")
            async with store.write() as session:
                row = KeyCandidate(
                    device_id=device_id,
                    fingerprint=loaded.fingerprint.hex,
                    algorithm=loaded.algorithm.value,
                    der=public_key_der(loaded.public),
                    remote_address="127.0.0.1",
                    possession_proven=proven,
                )
                session.add(row)
                await session.flush()
                return row.id

        return self.run(add)

    def set_online(self, device_id: str, online: bool = True) -> None:
        """Mark the device connected (or not), as the device server records a handshake: claiming
        by id needs the device online, and these servers run no device port."""

        async def mark(store: Store) -> None:
            async with store.write() as session:
                await session.execute(
                    update(Device).where(Device.id == device_id).values(online=online)
                )

        self.run(mark)

    def provision(
        self,
        token: str,
        device_id: str,
        pem: str | None = None,
        product_id: int | None = None,
        algorithm: str = "rsa",
    ) -> httpx.Response:
        data = {
            "deviceID": device_id,
            "publicKey": pem or device_pub_pem(),
            "filename": "cli",
            "order": f"manual_{time.time_ns()}",
            "algorithm": algorithm,
        }
        if product_id is not None:
            data["product_id"] = str(product_id)
        with self.http(token) as h:
            return h.post(f"/v1/provisioning/{device_id}", data=data)
