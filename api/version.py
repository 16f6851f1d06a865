"""The installed distribution's version, reported by health and OpenAPI."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    try:
        return version("keycabinet")
    except PackageNotFoundError:
        return "0+unknown"
