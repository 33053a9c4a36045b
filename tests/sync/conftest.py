"""The end-to-end sync tests run once per platform (Google and Microsoft emulators)."""

from __future__ import annotations

import pytest

from tests.sync.helpers import PLATFORMS


@pytest.fixture(params=PLATFORMS, ids=["google", "microsoft"])
def platform(request: pytest.FixtureRequest) -> str:
    return str(request.param)
