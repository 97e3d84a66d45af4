"""Where the policy node may load models from, and how it names them to peers.

Topics and diagnostics are readable by any peer on the network: they carry a label an operator
recognises (models/ur5e_box_reach), never the absolute paths the log has.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ebgan_mdn_ros.paths import package_share_directories


def model_label(model_dir: str, roots) -> str:
    """``<root folder name>/<path inside the root>`` (e.g. models/ik_2link), else the directory's own name."""
    real = os.path.realpath(model_dir)
    for root in roots:
        root = os.path.realpath(root)
        if real.startswith(root.rstrip(os.sep) + os.sep):
            return os.path.join(os.path.basename(root), os.path.relpath(real, root))
    return os.path.basename(real)


def without_paths(text: str) -> str:
    """Absolute paths cut to their last two parts: enough to say which file, not where it lives."""
    return _ABSOLUTE_PATH.sub(lambda m: os.sep.join(m.group(0).rstrip(os.sep).split(os.sep)[-2:]), text)


_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/[^\s'\",;:()]+")


def model_roots(configured, start_model: str) -> list[str]:
    """The allowed model roots: as configured, else the package's models/ and the start-up model's folder."""
    if configured:
        return [str(root) for root in configured]
    return [str(share / "models") for share in package_share_directories()] + [str(Path(start_model).parent)]
