from __future__ import annotations

import sys
from pathlib import Path

# make tests/toydomain.py importable as a third-party domain module
sys.path.insert(0, str(Path(__file__).parent))


def pytest_collection_modifyitems(config, items) -> None:
    """Tests that mostly wait (a real Slurm's queue, a local Ray) go first: under pytest-xdist
    one worker waits on them while the others run the rest, instead of the run ending on them."""
    waits = ("slurm", "ray")
    items.sort(key=lambda item: 0 if any(item.get_closest_marker(m) for m in waits) else 1)
