"""The policy runtime's knobs, validated where they are built (no onnxruntime).

Its own module so the node's parameter layer can take the defaults and the checks from here without
loading onnxruntime: one home for each knob, whoever exposes it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ebgan_mdn_ros.config_base import require
from ebgan_mdn_ros.runtime.selection import ANNEALED_RULES, SELECTION_RULES


@dataclass(frozen=True)
class RuntimeConfig:
    num_candidates: int = 256
    selection: str = "mode_first"
    continuity_weight: float = 0.0
    stickiness: bool = True
    keep_mode_min_weight: float = 0.05
    energy_threshold: float | None = None  # None: the manifest's suggestion if any, else always trusted
    temperature: float = 1.0
    seed: int = 0
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    use_fused_graph: bool = True
    # chunk models: weight (1/rad^2 or 1/m^2) of the mean squared distance between a candidate chunk's
    # first steps and the previous chunk's unexecuted tail (runtime/chunk_selection.py)
    splice_weight: float = 100.0
    # multi-level models (runtime/annealing.py): "" decides by `selection` at level 0; a rule of
    # ANNEALED_RULES decides by SMC down the ladder from annealing_start_level (L x K energy runs)
    annealing_rule: str = ""
    annealing_start_level: int = 0
    ddim_steps: int = 0                   # diffusion models: DDIM steps per decision; 0 = the manifest's
    chunk_mean_candidate: bool = True  # chunk models: candidate 0 is the kept component's mean chunk

    def __post_init__(self):
        if isinstance(self.providers, list):
            object.__setattr__(self, "providers", tuple(self.providers))
        _integer(self.num_candidates, "num_candidates", 1)
        require(self.selection in SELECTION_RULES, "selection", self.selection,
                f"one of {SELECTION_RULES}")
        _number(self.continuity_weight, "continuity_weight", ">= 0", lambda v: v >= 0)
        require(isinstance(self.stickiness, bool), "stickiness", self.stickiness, "true or false")
        _number(self.keep_mode_min_weight, "keep_mode_min_weight", "in [0, 1]", lambda v: 0 <= v <= 1)
        if self.energy_threshold is not None:
            _number(self.energy_threshold, "energy_threshold", "a finite number or null", lambda v: True)
        _number(self.temperature, "temperature", "> 0", lambda v: v > 0)
        _integer(self.seed, "seed", 0)
        require(isinstance(self.providers, tuple) and len(self.providers) > 0
                and all(isinstance(p, str) and p for p in self.providers), "providers", self.providers,
                "a non-empty list of onnxruntime provider names, e.g. ['CUDAExecutionProvider', 'CPUExecutionProvider']")
        _integer(self.intra_op_threads, "intra_op_threads", 1)
        _integer(self.inter_op_threads, "inter_op_threads", 1)
        _number(self.splice_weight, "splice_weight", ">= 0", lambda v: v >= 0)
        require(self.annealing_rule in ("", *ANNEALED_RULES), "annealing_rule", self.annealing_rule,
                f"'' (off) or one of {ANNEALED_RULES}")
        _integer(self.annealing_start_level, "annealing_start_level", 0)
        _integer(self.ddim_steps, "ddim_steps", 0)
        require(isinstance(self.chunk_mean_candidate, bool), "chunk_mean_candidate", self.chunk_mean_candidate,
                "true or false")
        require(isinstance(self.use_fused_graph, bool), "use_fused_graph", self.use_fused_graph, "true or false")


def _integer(value, key: str, minimum: int) -> None:
    require(isinstance(value, int) and not isinstance(value, bool) and value >= minimum, key, value,
            f"an integer >= {minimum}")


def _number(value, key: str, expectation: str, check) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and check(value)
    require(ok, key, value, expectation)
