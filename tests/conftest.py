from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# A developer's shell may point at a cluster (RAY_ADDRESS, RAY_API_SERVER_ADDRESS): the suite's runs are
# embedded unless a test starts its own cluster and says so.
for _name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
    os.environ.pop(_name, None)
# Caches the pipeline writes (hashed blocklists) go to a folder of this session, not the developer's home, removed
# when the process ends (each left ~14 MB in /tmp before).
_CACHE = tempfile.mkdtemp(prefix="refinedweb-tests-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)

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
