from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rig import Rig, close_rig, make_rig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path)
    yield r
    await close_rig(r)
