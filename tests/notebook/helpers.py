"""Helpers shared by the notebook tests."""

from __future__ import annotations

from ..guards import wait_until as wait_until
