#!/usr/bin/env bash
# Retrain from recorded demonstrations (issue #6): record -> dataset -> train -> export -> validate.
#
#   bash benchmarks/demo_loop.sh                      # IK: 2-link arm, elbow up / down per goal
#   TASK=multiroute GOALS=100 bash benchmarks/demo_loop.sh
#   BACKEND=ros bash benchmarks/demo_loop.sh          # drive the real sim_arm nodes over DDS (slower)
#
# Everything lands in $OUT (default benchmarks/out/demo_loop_<task>, git-ignored). The model
# directory it exports is what policy_node serves; to hot-swap it into a running node:
#   ros2 param set /policy_node model_directory $OUT/model
#   ros2 service call /policy_node/reload std_srvs/srv/Trigger
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

TASK=${TASK:-ik}                   # ik | multiroute
GOALS=${GOALS:-2000}               # finished goals (IK: one pair each) or episodes (multiroute: ~80 pairs each)
BACKEND=${BACKEND:-inprocess}      # inprocess (simulated time, seconds) | ros (real nodes, ~0.5 s per goal)
METHOD=${METHOD:-mdn}              # any `ebgan-mdn train --method`
EPOCHS=${EPOCHS:-100}
SEED=${SEED:-0}
OUT=${OUT:-benchmarks/out/demo_loop_$TASK}
COMMANDS=/forward_position_controller/commands

rm -rf "$OUT" && mkdir -p "$OUT"
set -x
python -m ebgan_mdn_ros.node.record_demos --task "$TASK" --goals "$GOALS" --seed "$SEED" --backend "$BACKEND" --out "$OUT/bag"
if [ "$TASK" = ik ]; then
  # condition = the goal, action = the commanded joint targets (one pair per command)
  ebgan_args=(--command-topic $COMMANDS --joints shoulder,elbow)
  kind=absolute
else
  # condition = the gantry position, action = command - position; each reset starts an episode
  ebgan_args=(--command-topic $COMMANDS --joints x_joint,y_joint --condition position --action delta
              --episode-topic /sim_arm/reset_position)
  kind=delta
fi
python -m ebgan_mdn_ros.cli dataset "$OUT/bag" --out "$OUT/demos.npz" "${ebgan_args[@]}"
python -m ebgan_mdn_ros.cli train --data "$OUT/demos.npz" --action-kind $kind --method "$METHOD" --seed "$SEED" \
  --set optim.epochs="$EPOCHS" --out "$OUT/run" --no-progress
python -m ebgan_mdn_ros.cli export "$OUT/run" --out "$OUT/model" --calibration "$OUT/demos.npz"
python -m ebgan_mdn_ros.cli validate "$OUT/model"
set +x
if [ "$TASK" = ik ]; then
  # Closed-form check of the exported model on goals it never saw: one decision per goal.
  python - "$OUT/model" <<'PY'
import sys
import numpy as np
from ebgan_mdn_ros.tasks.planar_arm import planar_forward_kinematics as forward_kinematics
from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime
from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig

runtime = PolicyRuntime(sys.argv[1], RuntimeConfig(stickiness=False, seed=1))
rng = np.random.default_rng(123)
radius, bearing = np.sqrt(rng.uniform(1.0, 5.5 ** 2, 500)), rng.uniform(-np.pi / 2, np.pi / 2, 500)
goals = np.stack([radius * np.cos(bearing), radius * np.sin(bearing)], 1)
actions = []
for goal in goals:
    runtime.reset()
    actions.append(runtime.decide(goal).action)
actions = np.array(actions)
error = np.linalg.norm(forward_kinematics(actions) - goals, axis=1)
print(f"IK on 500 held-out goals: success (error < 0.1 m) {100 * np.mean(error < 0.1):.1f} %, "
      f"median error {np.median(error):.3f} m, elbow_up share {100 * np.mean(actions[:, 1] > 0):.1f} %")
PY
else
  # Closed loop in simulated time on the recorded arm (the MuJoCo gantry): 100 Hz decisions, 5 s per rollout.
  python - "$OUT/model" <<'PY'
import sys
import numpy as np
from ebgan_mdn_ros.sim.mujoco_arm import MujocoArm
from ebgan_mdn_ros.sim.task_arms import task_arm_config
from ebgan_mdn_ros.tasks.expert import ROUTE_VIA_POINTS
from ebgan_mdn_ros.runtime.policy_runtime import PolicyRuntime
from ebgan_mdn_ros.runtime.runtime_config import RuntimeConfig

runtime = PolicyRuntime(sys.argv[1], RuntimeConfig(seed=1))
rng = np.random.default_rng(321)
reached, routes = 0, []
for rollout in range(30):
    arm = MujocoArm(task_arm_config("multiroute"))
    arm.reset(0.25 * rng.standard_normal(2))
    runtime.reset()
    path = [arm.position.copy()]
    for _ in range(500):
        arm.set_target(arm.position + runtime.decide(arm.position).action)
        arm.step(10)  # 10 ms of 1 kHz physics
        path.append(arm.position.copy())
        if np.all((arm.position >= 19.0) & (arm.position <= 21.0)):
            reached += 1
            break
    path = np.array(path)
    distance = [np.min(np.linalg.norm(path - via, axis=1)) for via in ROUTE_VIA_POINTS]
    routes.append(int(np.argmin(distance)) if min(distance) < 2.5 else -1)
counts = np.bincount(np.array(routes) + 1, minlength=4)
print(f"multiroute, 30 closed-loop rollouts: reached the goal box {reached}, routes via (10,0) {counts[1]}, "
      f"(5,5) {counts[2]}, (0,10) {counts[3]}, none {counts[0]}")
PY
fi
