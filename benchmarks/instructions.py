"""Machine instructions of one ``modelstats.analyze``, counted by valgrind's callgrind.

Wall times on this project's machine drift by tens of percent from one minute to the next
(docs/benchmarks.md); an instruction count repeats to about 0.1 %, so it tells a change of a
few percent from noise. The model is built and analysed twice outside the count (imports,
caches), then counting is switched on for ``--repeats`` analyses only.

    python benchmarks/instructions.py MobileNetV2 DenseNet121      # needs valgrind
    PYTHONPATH=/path/to/other/checkout python benchmarks/instructions.py MobileNetV2

prints, per model, the instructions of one ``analyze`` and where modelstats was imported from.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(name: str, repeats: int, signals: Path) -> None:
    """Build ``name``, analyse it twice, then analyse it ``repeats`` times between the
    ``ready`` and ``done`` signals (the parent switches the count on and off)."""
    import warnings

    warnings.simplefilter("ignore")  # (NASNetMobile's misaligned merges warn at each call)
    import keras

    import modelstats

    kwargs = {"input_shape": (224, 224, 3)} if name == "NASNetMobile" else {}
    model = getattr(keras.applications, name)(weights=None, **kwargs)
    for _ in range(2):
        modelstats.analyze(model)
    (signals / "ready").write_text(modelstats.__file__)
    while not (signals / "go").exists():
        time.sleep(0.05)
    for _ in range(repeats):
        modelstats.analyze(model)
    (signals / "done").touch()
    while not (signals / "exit").exists():
        time.sleep(0.05)


def _wait(path: Path, process: subprocess.Popen) -> None:
    while not path.exists():
        if process.poll() is not None:
            raise SystemExit(f"the analysis under valgrind exited with {process.returncode}")
        time.sleep(0.2)


def count(name: str, repeats: int) -> tuple[int, str]:
    """``(instructions of one analyze, modelstats' path)`` for one keras.applications model."""
    with tempfile.TemporaryDirectory() as folder:
        signals = Path(folder)
        out = signals / "callgrind.out"
        env = {**os.environ, "PYTHONHASHSEED": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={out}", sys.executable, __file__, "--child", name,
             "--repeats", str(repeats), "--signals", folder],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(signals / "ready", process)

        def control(*options: str) -> None:
            subprocess.run(["callgrind_control", *options, str(process.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        control("-i", "on")
        (signals / "go").touch()
        _wait(signals / "done", process)
        control("-i", "off")
        control("-d")
        (signals / "exit").touch()
        process.wait()
        total = 0
        for dump in signals.glob("callgrind.out*"):  # one file per dump (and one at exit)
            for line in dump.read_text(errors="replace").splitlines():
                if line.startswith("totals:"):  # (its "summary:" line may read 0)
                    total += int(line.split()[1])
        return total // repeats, (signals / "ready").read_text()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["MobileNetV2"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--signals", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.repeats, Path(args.signals))
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    for name in args.models:
        instructions, where = count(name, args.repeats)
        print(f"{name}: {instructions:,} instructions per analyze (modelstats from {where})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
