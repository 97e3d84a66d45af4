#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# DDS discovery on loopback only, and a domain of our own so parallel runs do not cross-talk.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( RANDOM % 100 + 101 ))}
exec python -m pytest -q "$@"
