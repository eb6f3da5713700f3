"""Time from process start to the first painted window, against importing torch alone.

Run: ``.venv/bin/python benchmarks/startup.py [--runs N]``. Uses the offscreen Qt platform
unless DISPLAY is set (then the real X server, e.g. Xvfb). The last line is one JSON object.
Goal (issue "Foundation"): first paint at most 1.0 s; importing torch and torchvision
alone, the baseline measured in the same run, takes about 3.4 s on the reference machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def first_paint_seconds() -> float:
    env = dict(os.environ, CNNVIZ_STARTUP_PROBE="1")
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    start = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnviz"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for line in proc.stdout:
            if line.startswith("CNNVIZ_FIRST_PAINT"):
                return float(line.split()[1]) - start
        raise RuntimeError(f"cnnviz exited ({proc.wait()}) without painting a window")
    finally:
        proc.kill()
        proc.wait()


def import_torch_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, torchvision"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    import_torch_seconds()  # warm the file cache for both sides alike
    paint = [first_paint_seconds() for _ in range(args.runs)]
    baseline = [import_torch_seconds() for _ in range(args.runs)]
    for i, (p, b) in enumerate(zip(paint, baseline, strict=True)):
        print(f"run {i}: first paint {p:.3f} s, import torch+torchvision {b:.3f} s")
    result = {
        "runs": args.runs,
        "first_paint_s_median": round(statistics.median(paint), 3),
        "first_paint_s_max": round(max(paint), 3),
        "import_torch_torchvision_s_median": round(statistics.median(baseline), 3),
        "first_paint_to_torch_import_ratio": round(
            statistics.median(paint) / statistics.median(baseline), 3
        ),
        "goal_first_paint_s": 1.0,
        "platform": "xcb" if os.environ.get("DISPLAY") else "offscreen",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
