"""User demonstrations from .npz or .csv: (conditions, actions) pairs plus their names and action box.

.npz: arrays `conditions` [N, C] and `actions` [N, A], optional `condition_names` / `action_names`
(string arrays). An action-chunk file (docs/chunks.md) adds the scalars `chunk_horizon`,
`chunk_n_exec` and `chunk_dt`; its actions are [N, H*A] (H steps flattened step-major) and its
action_names name the A joints once. .csv: a header row; the caller names which columns are conditions and which are
actions. Every problem (missing key or column, NaN, mismatched lengths) is a ValueError that says
which file and what.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ebgan_mdn_ros.spec import ChunkSpec, PolicySpec

BOX_MARGIN = 0.1  # the action box is the data's range widened by this share on each side


@dataclass(frozen=True, eq=False)
class Demonstrations:
    conditions: np.ndarray   # [N, C] float32
    actions: np.ndarray      # [N, A] float32 ([N, H*A] for chunks)
    condition_names: tuple[str, ...]
    action_names: tuple[str, ...]
    chunk: ChunkSpec | None = None

    def spec(self, action_kind: str = "absolute") -> PolicySpec:
        """A PolicySpec whose action box is the demonstrated range plus a margin (over every step of a chunk)."""
        steps = self.actions.reshape(-1, len(self.action_names))
        low, high = steps.min(0).astype(np.float64), steps.max(0).astype(np.float64)
        margin = BOX_MARGIN * np.maximum(high - low, 1e-3)
        return PolicySpec(self.condition_names, self.action_names, tuple((low - margin).tolist()),
                          tuple((high + margin).tolist()), action_kind, self.chunk)


def load_demonstrations(path: str | Path, condition_columns: Sequence[str] = (),
                        action_columns: Sequence[str] = ()) -> Demonstrations:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"demonstrations file {path} does not exist")
    if path.suffix == ".npz":
        return _from_npz(path)
    if path.suffix == ".csv":
        return _from_csv(path, tuple(condition_columns), tuple(action_columns))
    raise ValueError(f"{path}: unknown demonstrations format {path.suffix!r}, expected .npz or .csv")


def _from_npz(path: Path) -> Demonstrations:
    with np.load(path, allow_pickle=False) as archive:
        missing = [key for key in ("conditions", "actions") if key not in archive]
        if missing:
            raise ValueError(f"{path}: missing array(s) {missing}; found {sorted(archive.files)}")
        conditions, actions = _as_matrix(archive["conditions"], path, "conditions"), \
            _as_matrix(archive["actions"], path, "actions")
        condition_names = _names(archive, "condition_names", conditions.shape[1], "condition", path)
        chunk = _chunk(archive, path)
        horizon = 1 if chunk is None else chunk.horizon
        if actions.shape[1] % horizon:
            raise ValueError(f"{path}: actions have {actions.shape[1]} columns, not a multiple of chunk_horizon {horizon}")
        action_names = _names(archive, "action_names", actions.shape[1] // horizon, "action", path)
    return _checked(path, conditions, actions, condition_names, action_names, chunk)


def _chunk(archive, path: Path) -> ChunkSpec | None:
    keys = ("chunk_horizon", "chunk_n_exec", "chunk_dt")
    present = [key for key in keys if key in archive]
    if not present:
        return None
    if len(present) != len(keys):
        raise ValueError(f"{path}: a chunk file needs all of {list(keys)}, found only {present}")
    try:
        return ChunkSpec(int(archive["chunk_horizon"]), int(archive["chunk_n_exec"]), float(archive["chunk_dt"]))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def _as_matrix(values: np.ndarray, path: Path, key: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"{path}: {key} must be [N, D], got shape {values.shape}")
    if not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"{path}: {key} must be numeric, got dtype {values.dtype}")
    return values.astype(np.float32)


def _names(archive, key: str, count: int, default_prefix: str, path: Path) -> tuple[str, ...]:
    if key not in archive:
        return tuple(f"{default_prefix}.{i}" for i in range(count))
    names = tuple(str(name) for name in np.atleast_1d(archive[key]))
    if len(names) != count:
        raise ValueError(f"{path}: {key} has {len(names)} names for {count} columns")
    return names


def _from_csv(path: Path, condition_columns: tuple[str, ...], action_columns: tuple[str, ...]) -> Demonstrations:
    if not condition_columns or not action_columns:
        raise ValueError(f"{path}: a .csv needs --condition-columns and --action-columns")
    overlap = set(condition_columns) & set(action_columns)
    if overlap:
        raise ValueError(f"{path}: column(s) {sorted(overlap)} are both condition and action")
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file")
        header = [name.strip() for name in header]
        missing = [name for name in condition_columns + action_columns if name not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; the header has {header}")
        index = {name: header.index(name) for name in condition_columns + action_columns}
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}: line {line} has {len(row)} fields, the header has {len(header)}")
            try:
                rows.append([float(row[index[name]]) for name in condition_columns + action_columns])
            except ValueError as exc:
                raise ValueError(f"{path}: line {line}: {exc}") from None
    table = np.asarray(rows, dtype=np.float32).reshape(-1, len(index))
    split = len(condition_columns)
    return _checked(path, table[:, :split], table[:, split:], condition_columns, action_columns)


def _checked(path, conditions, actions, condition_names, action_names, chunk=None) -> Demonstrations:
    if len(conditions) != len(actions):
        raise ValueError(f"{path}: {len(conditions)} conditions but {len(actions)} actions")
    if len(actions) < 2:
        raise ValueError(f"{path}: needs at least 2 demonstrated pairs, got {len(actions)}")
    for key, values, names in (("conditions", conditions, condition_names), ("actions", actions, action_names)):
        bad = ~np.isfinite(values)
        if bad.any():
            rows, columns = np.nonzero(bad)
            raise ValueError(f"{path}: {int(bad.sum())} NaN/inf value(s) in {key}, first at row {rows[0]} "
                             f"column {names[columns[0] % len(names)]!r}")
    return Demonstrations(conditions, actions, tuple(condition_names), tuple(action_names), chunk)
