"""The ``scalelink`` command line (:func:`main`); it may import every other package."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
