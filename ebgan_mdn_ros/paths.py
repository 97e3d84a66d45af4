"""Where the package's data (launch/, config/, models/) is found: the one rule for every caller.

A source checkout (the directory holding package.xml above this package) comes first, since it is
the freshest copy; then every share/ebgan_mdn_ros on AMENT_PREFIX_PATH (a colcon or pip install).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "ebgan_mdn_ros"
CHECKOUT = Path(__file__).resolve().parent.parent  # this file sits at <checkout>/ebgan_mdn_ros/paths.py


def package_share_directories() -> list[Path]:
    """The checkout (when this module runs from one), then each installed share/ebgan_mdn_ros."""
    found = [CHECKOUT] if (CHECKOUT / "package.xml").is_file() else []
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        share = Path(prefix) / "share" / PACKAGE
        if share.is_dir() and share not in found:
            found.append(share)
    return found


def find_in_share(value: str | Path, want_directory: bool = False) -> Path:
    """``value`` as given when it exists or is absolute, else the first share directory holding it.

    Returns ``value`` unchanged when nothing matches, so the caller's error names what was asked for.
    """
    path = Path(value).expanduser()
    exists = path.is_dir if want_directory else path.is_file
    if path.is_absolute() or exists():
        return path.resolve() if exists() else path
    for share in package_share_directories():
        candidate = share / path
        if (candidate.is_dir() if want_directory else candidate.is_file()):
            return candidate.resolve()
    return path
