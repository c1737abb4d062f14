"""The test suite on both detectron2s that users have: the installed one (detectron2 v0.6's python
sources by default), then upstream detectron2 main, whose python sources the project's CI finds
beside the checkout (``../shared/third_party/detectron2-main-*.tar.gz``) and puts first on
``PYTHONPATH``, unpacked into a temporary folder.

    python tools/run_tests.py [pytest args ...]        # what `make test` and CI run

``SGNET_DETECTRON2_MAIN`` names another snapshot (a ``.tar.gz`` or an unpacked folder holding
``detectron2/``). Without one the second leg is skipped with the reason, except in CI
(``CI=true``), where a missing snapshot fails the run. Exit status: 0 when every leg that ran
passed.
"""
import glob
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT_PATTERN = str(REPO.parent / "shared" / "third_party" / "detectron2-main-*.tar.gz")
# pytest's closing line, e.g. "= 180 passed, 2 skipped, 1 warning in 95.1s =".
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped)")


def find_snapshot():
    """The main snapshot to use, or None; a named one that does not exist is an error."""
    named = os.environ.get("SGNET_DETECTRON2_MAIN")
    if named:
        if not os.path.exists(named):
            sys.exit(f"error: SGNET_DETECTRON2_MAIN={named} does not exist")
        return named
    found = sorted(glob.glob(SNAPSHOT_PATTERN))
    return found[-1] if found else None


def unpacked_source_root(snapshot: str, workdir: str) -> str:
    """The folder to put on PYTHONPATH: the one holding ``detectron2/``."""
    if os.path.isdir(snapshot):
        root = snapshot
    else:
        with tarfile.open(snapshot) as archive:
            # The "data" filter (no links out, no device files) where this Python has it.
            archive.extractall(workdir, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        root = workdir
    packages = glob.glob(os.path.join(root, "**", "detectron2", "__init__.py"), recursive=True)
    candidates = [str(Path(p).parents[1]) for p in packages]
    if not candidates:
        sys.exit(f"error: {snapshot} holds no detectron2/ package")
    return min(candidates, key=len)


def run_leg(name: str, pytest_args, env) -> dict:
    print(f"\n=== {name} ===", flush=True)
    started = time.monotonic()
    # The detectron2 this leg imports (detectron2's own __init__ is light: no torch import).
    subprocess.run(
        [sys.executable, "-c", "import detectron2; print('detectron2', detectron2.__version__, 'from', detectron2.__path__[0])"],
        cwd=REPO, env=env, check=False,
    )
    sys.stdout.flush()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", *pytest_args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    closing = ""
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if COUNT.search(line):
            closing = line
    code = process.wait()
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in COUNT.findall(closing)}
    return {"name": name, "code": code, "counts": counts, "minutes": (time.monotonic() - started) / 60}


def main(pytest_args) -> int:
    pytest_args = pytest_args or ["tests"]
    snapshot = find_snapshot()
    in_ci = os.environ.get("CI", "").lower() == "true"
    skipped = None
    if snapshot is None:
        skipped = (
            f"no detectron2 main snapshot: neither SGNET_DETECTRON2_MAIN nor {SNAPSHOT_PATTERN} exists "
            "(CI has it beside the checkout)"
        )
        if in_ci:  # at once, not after a whole first leg
            print(f"leg 2/2 (detectron2 main): FAILED: {skipped}")
            return 1
    legs = [run_leg("leg 1/2: the installed detectron2", pytest_args, dict(os.environ))]
    if snapshot is not None:
        with tempfile.TemporaryDirectory(prefix="sgnet-detectron2-main-") as workdir:
            source_root = unpacked_source_root(snapshot, workdir)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
            legs.append(run_leg(f"leg 2/2: detectron2 main from {snapshot}", pytest_args, env))

    print("\n=== summary ===")
    for leg in legs:
        counts = ", ".join(f"{n} {kind}" for kind, n in leg["counts"].items()) or "no result"
        status = "passed" if leg["code"] == 0 else f"FAILED (exit {leg['code']})"
        print(f"{leg['name']}: {status}: {counts} in {leg['minutes']:.1f} min")
    failed = [leg for leg in legs if leg["code"] != 0]
    if skipped:
        print(f"leg 2/2 (detectron2 main): SKIPPED: {skipped}")
    total = {kind: sum(leg["counts"].get(kind, 0) for leg in legs) for kind in ("passed", "failed", "error")}
    print(f"total: {total['passed']} passed, {total['failed'] + total['error']} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
