from __future__ import annotations

import sys
from pathlib import Path

# make tests/toydomain.py importable as a third-party domain module
sys.path.insert(0, str(Path(__file__).parent))
