import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared folder of real public test files, beside the repository by default."""
    path = Path(os.environ.get("BIOFED_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(
            "../shared/data not found: clone the repo beside shared/ or set BIOFED_SHARED_DATA"
        )
    return path
