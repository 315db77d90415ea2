from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLES = REPO / "refinedweb" / "resources" / "samples"


def shared(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not present: {path} (CI has ../shared/data beside the checkout)")
    return path


@pytest.fixture(scope="session")
def paper_config():
    from refinedweb.config import load_config

    return load_config()
