"""Moved to :mod:`conlearn.core.progress` (every workflow shows the same progress)."""

from ...core.progress import ConsoleProgress

__all__ = ["ConsoleProgress"]
