#!/usr/bin/env python
"""Write the packages the GPU machine lacks into one folder to carry there, and print the one
command that installs them there and runs ``tools/gpu_check.py``.

    python tools/device_bundle.py [--output output/device_bundle]

The GPU machine some sessions are lent (``../shared/docs/environment.md``) has Python 3.12 on
x86-64 Linux with torch, torchvision, numpy, OpenCV, onnx, onnxruntime, timm, matplotlib and a
few more (:data:`DEVICE_HAS`), but no detectron2, fvcore, iopath, yacs, pycocotools, av,
omegaconf, hydra-core, termcolor or tensorboard, and no network. The bundle holds, as wheels for
CPython 3.12 manylinux x86-64 (``OUTPUT/wheels``):

- every distribution that sgnet's and detectron2 0.6's runtime requirements resolve to for that
  Python (pip's own resolver: ``pip install --dry-run --report``), except those the machine has;
- the pure-Python ones PyPI has only as sdists (fvcore, antlr4-python3-runtime), built here;
- detectron2 0.6's python sources from the hash-checked sdist, patched as
  ``tools/install_detectron2.py`` patches them, as a wheel.

The folder must stay under :data:`MAX_MIB` (the device tool carries 64 MiB with the working
tree); a larger one is refused. ``OUTPUT/bundle.json`` lists its wheels. The folder is written
whole or not at all; an earlier bundle there is replaced, any other non-empty folder refused.
Needs the package index (not the GPU machine). Exit status: 0, or 2 on a user's mistake.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tools")]

import install_detectron2  # noqa: E402

from sgnet.errors import InvalidInput, run_main  # noqa: E402
from sgnet.fileio import same_or_inside  # noqa: E402

PYTHON_VERSION = "3.12"
# Wheels the machine's glibc (Ubuntu 24.04's, 2.39) loads; pure-Python wheels match "any".
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64", "any")
# What the GPU machine has (environment.md), with their own dependencies, as normalised names.
DEVICE_HAS = frozenset(
    """torch torchvision numpy opencv-python-headless onnx onnxruntime timm matplotlib pillow psutil tqdm
    tabulate portalocker cloudpickle scipy pytest contourpy cycler fonttools kiwisolver packaging pyparsing
    python-dateutil six pyyaml huggingface-hub safetensors typing-extensions setuptools sympy mpmath networkx
    jinja2 markupsafe filelock fsspec protobuf""".split()
)
# Pure-Python distributions PyPI publishes only as sdists: built into wheels here.
SDIST_ONLY = ("fvcore>=0.1.5,<0.1.6", "antlr4-python3-runtime==4.9.3")
MAX_MIB = 60
MANIFEST = "bundle.json"


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def requirement_name(requirement: str) -> str:
    for separator in "<>=!~[; ":
        requirement = requirement.split(separator, 1)[0]
    return normalise(requirement)


def sgnet_requirements() -> list:
    """sgnet's runtime dependencies (pyproject.toml) and detectron2 0.6's (install_detectron2)."""
    import tomllib

    with open(REPO / "pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    return list(dict.fromkeys(dependencies + install_detectron2.RUNTIME_REQUIREMENTS))


def target_options() -> list:
    """pip's options selecting wheels for the GPU machine's Python, whatever Python runs pip."""
    options = ["--python-version", PYTHON_VERSION, "--implementation", "cp", "--only-binary=:all:"]
    for platform in PLATFORMS:
        options += ["--platform", platform]
    return options


def pip(*args) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).strip().splitlines() if not line.startswith("WARNING")]
        raise InvalidInput(f"pip {args[0]} failed: {' '.join(lines[-3:]) or result.returncode}")


def resolved(requirements: list, find_links: Path, workdir: Path) -> list:
    """[(name, version, whether the wheel is one of ``find_links``')] pip resolves
    ``requirements`` to for the GPU machine."""
    report = workdir / "report.json"
    pip("install", "--dry-run", "--quiet", "--ignore-installed", "--target", str(workdir / "target"),
        "--report", str(report), "--find-links", str(find_links), *target_options(), *requirements)  # fmt: skip
    with open(report) as f:
        installs = json.load(f)["install"]
    # (The index itself may be a local mirror: file:// URLs that are not find_links'.)
    local = find_links.resolve().as_uri() + "/"
    return [
        (item["metadata"]["name"], item["metadata"]["version"], item["download_info"]["url"].startswith(local))
        for item in installs
    ]


def build_bundle(wheels: Path, workdir: Path) -> list:
    """Fill ``wheels`` with the GPU machine's missing wheels; returns their file names."""
    source, _ = install_detectron2.prepared_sources(workdir)
    pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source), *SDIST_ONLY)
    missing = [r for r in sgnet_requirements() if requirement_name(r) not in DEVICE_HAS]
    pins = [
        f"{name}=={version}"
        for name, version, local in resolved(missing + ["detectron2==0.6"], wheels, workdir)
        if normalise(name) not in DEVICE_HAS and not local
    ]
    pip("download", "--quiet", "--no-deps", "--dest", str(wheels), *target_options(), *pins)
    return sorted(path.name for path in wheels.glob("*.whl"))


def folder_mib(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 2**20


def check_output(output: Path) -> None:
    """An earlier bundle is replaced; any other non-empty folder, or a file, is refused."""
    if output.is_file() or (output.is_dir() and any(output.iterdir()) and not (output / MANIFEST).is_file()):
        raise InvalidInput(f"--output {output}: holds other files than an earlier bundle; choose an empty or new folder")


def install_command(output: Path) -> str:
    """The one command, run in the repository root there (the device tool's ``run``, carrying
    ``output``): installs the wheels next to the machine's packages and runs the GPU checks."""
    bundle = os.path.relpath(output, REPO)
    return (
        f"python3 -m pip install --quiet --no-index --no-deps --target {bundle}/site {bundle}/wheels/*.whl && "
        f"PYTHONPATH=$PWD/{bundle}/site:$PWD PYTHONUNBUFFERED=1 python3 tools/gpu_check.py"
    )


def bundle(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "output" / "device_bundle")
    args = parser.parse_args(argv)
    output = args.output.resolve()
    check_output(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the output and renamed when complete: a failure leaves the earlier bundle.
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.") as tmp:
        staging, workdir = Path(tmp) / "bundle", Path(tmp) / "work"
        (staging / "wheels").mkdir(parents=True)
        workdir.mkdir()
        print("device_bundle: resolving and downloading wheels for CPython 3.12 manylinux x86-64 ...", flush=True)
        names = build_bundle(staging / "wheels", workdir)
        size = folder_mib(staging)
        if size > MAX_MIB:
            raise InvalidInput(f"the bundle would be {size:.1f} MiB, over {MAX_MIB} MiB: the device tool cannot carry it")
        manifest = {"python": PYTHON_VERSION, "platforms": list(PLATFORMS), "wheels": names, "mib": round(size, 1)}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging, output)
    print(f"device_bundle: {len(names)} wheels, {size:.1f} MiB in {output}")
    if not same_or_inside(str(output), str(REPO)):
        print(f"(outside the repository {REPO}: the device tool carries only paths inside it; move it there)")
    print("On the GPU machine (device run, carry: " + os.path.relpath(output, REPO) + "):")
    print(install_command(output))
    return 0


def main(argv=None) -> int:
    """The command line; returns the exit status (2: a user's mistake, reported in one line)."""
    return run_main("device_bundle.py", bundle, argv)


if __name__ == "__main__":
    sys.exit(main())
