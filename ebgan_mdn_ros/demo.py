"""`python -m ebgan_mdn_ros.demo`, the README's main job: the simulated arm driven by the shipped model.

An entry point and nothing else: the job talks ROS, so it lives in the node layer (node/demo.py).
"""
from ebgan_mdn_ros.node.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
