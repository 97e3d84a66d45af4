"""The README's main job: `python -m ebgan_mdn_ros.demo` over ROS (real processes over DDS), and its clip.

Short runs: the UR5e for a few episodes (the figure and a one-episode clip written), the 2-link arm by
config. The clip's renderer is tested on its own: frame sampling, the goal's colour, and a clean
"no clip" line without GL.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ebgan_mdn_ros.sim.render import ClipConfig, covered_episodes, frame_indices

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra) -> dict[str, str]:
    return {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": "77", **extra}


def test_frames_take_the_last_state_at_or_before_each_frame_time():
    times = np.array([0.0, 0.01, 0.02, 0.05, 0.2])
    assert frame_indices(times, 0.0, 0.2, 20.0).tolist() == [0, 3, 3, 3]  # frames at 0, .05, .1, .15
    assert frame_indices(times, -0.1, 0.0, 20.0).tolist() == []           # before the first state: none


def test_the_clip_skips_episodes_the_recording_joined_late():
    """An observer that discovered joint_states late has no states for the first episode's start."""
    times = np.arange(2.0, 10.0, 0.01)
    assert covered_episodes(times, [0.5, 3.0, 6.0, 9.5], [2.9, 5.9, 8.9, 12.0]) == [1, 2]
    assert covered_episodes(np.array([]), [0.0], [1.0]) == []


def test_a_bad_clip_config_names_the_key():
    with pytest.raises(ValueError, match="fps"):
        ClipConfig(fps=0)


def _recording(path: Path) -> Path:
    from ebgan_mdn_ros.sim.box_reach_expert import box_reach_arm
    home = box_reach_arm().home
    moved = home + np.array([0.3, 0.0, 0.0, 0.0, 0.0, 0.0])  # the arm moves: identical GIF frames merge
    np.savez(path, time=np.array([0.0, 0.1, 0.2]), position=np.stack([home, moved, moved]),
             episode_start=np.array([0.0]), episode_end=np.array([0.2]), goal=np.array([[0.3, 0.5, 0.35]]),
             route=np.array(["near"]))
    return path


def test_the_clip_shows_the_goal_in_green(tmp_path):
    """Rendered headless with EGL, as the demo does, then read back from the GIF."""
    from PIL import Image
    out = tmp_path / "clip.gif"
    done = subprocess.run([sys.executable, "-m", "ebgan_mdn_ros.sim.render", str(_recording(tmp_path / "r.npz")),
                           "--out", str(out), "--fps", "10"], env=_env(MUJOCO_GL="egl"), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    clip = Image.open(out)
    assert clip.n_frames >= 2
    frame = np.asarray(clip.convert("RGB")).astype(int)
    green = (frame[..., 1] > 120) & (frame[..., 0] < 90) & (frame[..., 2] < 90)
    assert green.sum() >= 20, "the goal marker lost its colour"


def test_without_gl_the_renderer_says_why_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ebgan_mdn_ros.sim.render", str(_recording(tmp_path / "r.npz")),
                           "--out", str(tmp_path / "c.gif")], env=_env(MUJOCO_GL="no-such-backend"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("render: no clip:") and "MUJOCO_GL" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "c.gif").exists()


def _demo(tmp_path, *args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ebgan_mdn_ros.demo", "--png", str(tmp_path / "demo.png"),
               "--clip", str(tmp_path / "demo.gif"), *args]
    return subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=240)


@pytest.mark.ros
def test_the_main_job_drives_the_ur5e_around_the_box_without_contact(tmp_path):
    done = _demo(tmp_path, "--seconds", "9", "--clip-episodes", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "UR5e box-reach demo" in out and "contacts        0 episodes" in out, out
    reached, attempted = (int(v) for v in out.split("goals reached")[1].split()[0].split("/"))
    assert attempted >= 2 and reached == attempted, out
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert "frames ->" in out and (tmp_path / "demo.gif").is_file(), out


@pytest.mark.ros
def test_without_gl_the_main_job_still_succeeds_and_says_why(tmp_path):
    done = _demo(tmp_path, "--seconds", "4", "--clip-gl", "no-such-backend")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "clip            render: no clip:" in done.stdout, done.stdout
    assert not (tmp_path / "demo.gif").exists()


@pytest.mark.ros
def test_the_2link_arm_stays_available_by_config(tmp_path):
    done = _demo(tmp_path, "--config", "config/sim_ik.yaml", "--seconds", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2-link IK demo" in done.stdout and (tmp_path / "demo.png").is_file()


def test_composed_is_refused_for_the_ur5e_with_the_reason(tmp_path):
    done = _demo(tmp_path, "--composed")
    assert done.returncode == 2 and "--composed runs the 2-link arm" in done.stderr
