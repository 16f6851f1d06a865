"""The console with a whole simulated cabinet attached, signed in through its own form.

Shared by the console tests of issue 13 (``test_identity_grid.py``, ``test_key_fob.py``):
the kiosk tests' rig (real drivers against the Kerong and DS2482 simulators, a real SQLite
database, a fake clock), an account of the role a test needs, the real admin app over
httpx, and the console's own sign-in form (CSRF token and all). Not a test module.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher
from rig import Rig, close_rig, make_rig

from api.app import create_admin_app
from api.deps import AdminOptions
from kiosk.services import accounts, tx
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models_auth import AccountRole

POLICY = AuthPolicy(hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
IDENTITY: dict[str, Any] = {"hardware": {"identity": {"enabled": True}}}
"""A cabinet that reads each key's fob chip (issue 13), not only whether a slot is full."""


@contextlib.asynccontextmanager
async def console_on_rig(tmp_path: Path, *, username: str, role: AccountRole,
                         identity: bool) -> AsyncIterator[tuple[Rig, httpx.AsyncClient]]:
    """A started cabinet (sensing key identity if ``identity``) and a console client signed
    in as a new ``role`` account ``username``; the cabinet is stopped afterwards."""
    rig = await make_rig(tmp_path, **(IDENTITY if identity else {}))
    try:
        with tx.write(rig.runtime.audit) as session:
            accounts.create_account(session, rig.runtime.audit, by=None, username=username,
                                    password=PASSWORD, role=role, person_id=None,
                                    department_id=None, policy=POLICY)
        app = create_admin_app(rig.runtime, AdminOptions(auth_policy=POLICY),
                               cabinet=rig.cabinet)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            page = await client.get("/console/login")
            token = CSRF.search(page.text)
            assert token, page.text[:500]
            done = await client.post("/console/login", headers={"Origin": "http://testserver"},
                                     data={"csrf": token.group(1), "username": username,
                                           "password": PASSWORD})
            assert done.status_code == 303, done.text
            yield rig, client
    finally:
        await close_rig(rig)


__all__ = ["CSRF", "IDENTITY", "PASSWORD", "POLICY", "Rig", "console_on_rig"]
