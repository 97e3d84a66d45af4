#!/usr/bin/env bash
# Make .venv with the pinned Python deps and the ROS 2 Kilted pip wheels, build msg/ with rosidl
# into the venv, and pip-install this package (editable). Idempotent; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
. .venv/bin/activate
stamp=.venv/.requirements.sha
want=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python -m pip install -q --upgrade pip wheel 'setuptools<80'  # colcon-core needs <80
  # torch==2.13.0 is pinned in requirements.txt: the CPU wheel from local disk, never a CUDA build.
  python -m pip install -q -r requirements.txt -r requirements-ros-build.txt -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
# The ROS wheels' CMake exports name their build container's include dirs; point them at this venv.
PYINC=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$(python -c "import numpy; print(numpy.get_include())")
{ grep -rlZ "/opt/python/cp311-cp311/" "$VIRTUAL_ENV/share" --include="*.cmake" || true; } | xargs -0 -r sed -i \
  -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
  -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g"
mkdir -p build
export AMENT_PREFIX_PATH="$VIRTUAL_ENV" CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
# Messages (and launch/config/models into share/ebgan_mdn_ros) into the venv prefix: no sourcing needed.
msg_stamp=.venv/.msgs.sha
# The executables too, into lib/ebgan_mdn_ros with a #! naming the venv's python: the layout of a colcon
# install, which is where `ros2 launch` looks for them (the ament index, then <prefix>/lib/<package>).
msg_want=$(cat msg/*.msg CMakeLists.txt package.xml scripts/* | sha256sum | cut -d' ' -f1)
if [ "$(cat "$msg_stamp" 2>/dev/null)" != "$msg_want" ] || [ ! -d "$VIRTUAL_ENV/share/ebgan_mdn_ros" ] \
   || [ ! -x "$VIRTUAL_ENV/lib/ebgan_mdn_ros/policy_node" ]; then
  cmake -S . -B build/pip -DCMAKE_INSTALL_PREFIX="$VIRTUAL_ENV" -DCMAKE_BUILD_TYPE=Release \
        -DEBGAN_INSTALL_PYTHON=OFF -DEBGAN_SCRIPT_PYTHON="$VIRTUAL_ENV/bin/python" \
        -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$(command -v python)" > build/cmake.log 2>&1 \
    || { cat build/cmake.log; exit 1; }
  cmake --build build/pip -j2 >> build/cmake.log 2>&1 && cmake --install build/pip >> build/cmake.log 2>&1 \
    || { tail -50 build/cmake.log; exit 1; }
  echo "$msg_want" > "$msg_stamp"
fi
# rosidl installs an empty ebgan_mdn_ros/__init__.py; ours joins that folder (messages) with the
# source checkout (everything else) through pkgutil.extend_path, whichever is found first.
SITE=$(python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cp ebgan_mdn_ros/__init__.py "$SITE/ebgan_mdn_ros/__init__.py"
# launch/config/models change without a msg change: keep share/ in step with the checkout.
rm -rf "$VIRTUAL_ENV/share/ebgan_mdn_ros/launch" "$VIRTUAL_ENV/share/ebgan_mdn_ros/config" "$VIRTUAL_ENV/share/ebgan_mdn_ros/models"
cp -r launch config models "$VIRTUAL_ENV/share/ebgan_mdn_ros/"
# compat mode: a .pth puts the checkout on sys.path, so extend_path (above) can find it.
python -m pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=compat \
  > build/pip-editable.log 2>&1 || { cat build/pip-editable.log; exit 1; }
# ament_index (get_package_share_directory) finds share/ebgan_mdn_ros through AMENT_PREFIX_PATH.
grep -q AMENT_PREFIX_PATH .venv/bin/activate || echo 'export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"' >> .venv/bin/activate
echo "setup done: . .venv/bin/activate"
