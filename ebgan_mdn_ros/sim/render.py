"""A clip of recorded box-reach episodes, rendered offscreen by MuJoCo after the run (never in a control loop).

    MUJOCO_GL=egl python -m ebgan_mdn_ros.sim.render runs/demo/ur5e_states.npz --out runs/demo/ur5e.gif

The input holds what joint_states showed: ``time`` (s), ``position`` (N x joints, in the arm's joint
order), and per episode ``episode_start``/``episode_end`` (s), ``goal`` (x, y, z) and ``route``. Frames
are sampled at ``fps`` from the recorded states; the goal is a green sphere and the flange leaves a
trail coloured by the route the episode took. A frame costs 60-120 ms on llvmpipe without shadows, so this runs in a process of its own.
MUJOCO_GL must be set before mujoco is imported: egl works headless on Mesa; osmesa needs libosmesa6.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROUTE_COLOURS = {"near": (0.12, 0.47, 0.71), "far": (1.0, 0.5, 0.05)}  # matplotlib tab:blue, tab:orange
OTHER_COLOUR = (0.5, 0.5, 0.5)
GOAL_COLOUR = (0.17, 0.63, 0.17, 1.0)  # tab:green


@dataclass(frozen=True)
class ClipConfig:
    fps: float = 15.0
    width: int = 480
    height: int = 360
    episodes: int = 3                 # the first N finished episodes the recorded states cover
    lookat: tuple[float, float, float] = (0.0, 0.38, 0.25)
    distance: float = 1.9             # m
    azimuth: float = 90.0             # deg: behind the base, start on the left, goal on the right
    elevation: float = -60.0          # deg: high enough that the arm never hides the box

    def __post_init__(self):
        for key in ("fps", "width", "height", "episodes", "distance"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key}: {getattr(self, key)!r} must be > 0")


def frame_indices(times: np.ndarray, start: float, end: float, fps: float) -> np.ndarray:
    """For each frame time in [start, end] at ``fps``: the last recorded state at or before it."""
    frame_times = np.arange(start, end, 1.0 / fps)
    indices = np.searchsorted(times, frame_times, side="right") - 1
    return indices[indices >= 0]


def covered_episodes(times: np.ndarray, starts, ends) -> list[int]:
    """The episodes whose whole window the recorded states cover: a recorder that joined late (DDS
    discovery can take seconds) missed the start of the first, which would show a still arm."""
    if len(times) == 0:
        return []
    return [e for e, (start, end) in enumerate(zip(starts, ends)) if times[0] <= start and end <= times[-1]]


def render_clip(recording: dict, out: Path, config: ClipConfig = ClipConfig()) -> int:
    """Write a GIF of the first episodes in ``recording``; returns the number of frames."""
    import mujoco
    from PIL import Image

    from ebgan_mdn_ros.sim.box_reach_expert import box_reach_arm
    arm = box_reach_arm()
    model, data = arm.model, arm.data
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, config.width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, config.height)
    renderer = mujoco.Renderer(model, config.height, config.width)
    camera = mujoco.MjvCamera()
    camera.lookat[:] = config.lookat
    camera.distance, camera.azimuth, camera.elevation = config.distance, config.azimuth, config.elevation
    qpos = [int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)])
            for name in arm.joint_names]
    times, positions = np.asarray(recording["time"]), np.asarray(recording["position"])
    frames = []
    for e in covered_episodes(times, recording["episode_start"], recording["episode_end"])[:config.episodes]:
        goal = np.asarray(recording["goal"][e], dtype=np.float64)
        colour = ROUTE_COLOURS.get(str(recording["route"][e]), OTHER_COLOUR)
        trail: list[np.ndarray] = []
        for index in frame_indices(times, float(recording["episode_start"][e]), float(recording["episode_end"][e]),
                                   config.fps):
            data.qpos[qpos] = positions[index]
            mujoco.mj_forward(model, data)
            trail.append(arm.flange_pose()[0].copy())
            renderer.update_scene(data, camera=camera)
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False  # 2-3x the cost of a frame
            _add_sphere(mujoco, renderer.scene, goal, 0.025, GOAL_COLOUR)
            for point in trail:
                _add_sphere(mujoco, renderer.scene, point, 0.008, (*colour, 1.0))
            frames.append(renderer.render())
    renderer.close()
    if not frames:
        raise ValueError("no frame to render: no finished episode lies within the recorded states")
    palette = gif_palette(frames[len(frames) // 2])
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    out.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(out, save_all=True, append_images=images[1:], duration=int(1000 / config.fps), loop=0)
    return len(frames)


def gif_palette(frame: np.ndarray):
    """One 256-colour palette for the clip that keeps the markers' colours: quantised frame by frame,
    a marker a few pixels wide loses its colour to the arm and the table (green came out cyan)."""
    from PIL import Image
    swatch_colours = [GOAL_COLOUR[:3], *ROUTE_COLOURS.values(), OTHER_COLOUR]
    swatches = np.concatenate([np.broadcast_to(np.array(c) * 255, (frame.shape[0] // 4, 32, 3))
                               for c in swatch_colours], axis=1).astype(np.uint8)
    pad = np.zeros((frame.shape[0] // 4, frame.shape[1] - swatches.shape[1], 3), np.uint8)
    sample = np.concatenate([frame, np.concatenate([swatches, pad], axis=1)], axis=0)
    return Image.fromarray(sample).quantize(colors=256, method=Image.Quantize.MEDIANCUT)


def _add_sphere(mujoco, scene, position: np.ndarray, radius: float, rgba) -> None:
    if scene.ngeom >= scene.maxgeom:
        return  # a full scene only loses the marker
    geom = scene.geoms[scene.ngeom]
    mujoco.mjv_initGeom(geom, mujoco.mjtGeom.mjGEOM_SPHERE, np.array([radius, 0.0, 0.0]),
                        position, np.eye(3).ravel(), np.asarray(rgba, dtype=np.float32))
    geom.emission, geom.specular = 0.5, 0.0  # a marker keeps its colour under the scene's light
    scene.ngeom += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ebgan_mdn_ros.sim.render", description=__doc__.split("\n")[0])
    parser.add_argument("recording", type=Path, help=".npz of joint states and episodes (the demo writes one)")
    parser.add_argument("--out", type=Path, required=True, help="GIF to write")
    parser.add_argument("--episodes", type=int, default=ClipConfig.episodes)
    parser.add_argument("--fps", type=float, default=ClipConfig.fps)
    args = parser.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        config = ClipConfig(fps=args.fps, episodes=args.episodes)
        with np.load(args.recording, allow_pickle=False) as recording:
            frames = render_clip(dict(recording), args.out, config)
    except Exception as exc:  # noqa: BLE001 -- one line for the caller: no GL, a bad file, ...
        print(f"render: no clip: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"render: {frames} frames -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
