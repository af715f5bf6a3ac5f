"""End-to-end tests: ``import terminal`` (the pty harness) from this directory."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
