"""Paths the binding's tests need (a distinct module name: tests/python has its own conftest)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HEADER = REPO / "include" / "docauth.h"
BINDING = REPO / "bindings" / "python"
if str(BINDING) not in sys.path:
    sys.path.insert(0, str(BINDING))  # for gen_errors
