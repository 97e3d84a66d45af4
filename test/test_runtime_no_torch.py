"""The runtime, the loader and `ebgan-mdn validate` run on a robot without torch (or rclpy)."""
import subprocess
import sys
import textwrap

from model_factory import build_model_dir

CHILD = textwrap.dedent("""
    import sys

    class Blocker:
        # Any import of these fails, as on a machine where they are not installed.
        blocked = ("torch", "rclpy")

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.blocked:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    import numpy as np
    from ebgan_mdn_ros.cli import main
    from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime
    from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig

    model_dir = sys.argv[1]
    assert main(["validate", model_dir]) == 0
    for fused in (True, False):
        runtime = PolicyRuntime(model_dir, RuntimeConfig(num_candidates=32, use_fused_graph=fused))
        runtime.warmup(3)
        decision = runtime.decide(np.array([0.2, -0.1]), previous_action=np.zeros(3))
        assert decision.action.shape == (3,) and np.isfinite(decision.energy)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in Blocker.blocked)
    assert not leaked, leaked
    print("ran without torch")
""")


def test_runtime_runs_with_torch_absent(tmp_path):
    model_dir = build_model_dir(tmp_path / "model", ("goal.0", "goal.1"), ("j1", "j2", "j3"), hidden_sizes=(8,))
    result = subprocess.run([sys.executable, "-c", CHILD, str(model_dir)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ran without torch" in result.stdout
