"""Install detectron2 into the current Python environment when it is not importable.

detectron2 is not published on PyPI under its own name. On machines without a source build, this
script installs the PyPI repackaging of detectron2 v0.6's python sources (``pb1-detectron2==0.6``),
verified by its sha256, *without* its C++ extension (that sdist does not ship the C++ sources;
``sgnet.compat`` makes the pure-python package work, see there). An importable detectron2 (for
example a user's own source build) is never touched.

Usage: python tools/install_detectron2.py [--installer "uv pip install --python PY"]
"""
import argparse
import hashlib
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

SDIST_PROJECT = "pb1-detectron2"
SDIST_NAME = "pb1-detectron2-0.6.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
# Overridable for mirrors (and for tests of the failure path).
INDEX_URL = os.environ.get("SGNET_DETECTRON2_INDEX_URL", "https://pypi.org/simple/{project}/")

# detectron2 0.6's real runtime needs. Its own pins (black==21.4b2, future, pydot) are stale and
# unused at runtime, so the package itself is installed with --no-deps and these instead.
# setuptools<80 keeps `pkg_resources`, which `detectron2.model_zoo` imports.
RUNTIME_REQUIREMENTS = [
    "fvcore>=0.1.5,<0.1.6",
    "iopath>=0.1.7,<0.1.10",
    "pycocotools>=2.0.2",
    "termcolor>=1.1",
    "yacs>=0.1.8",
    "tabulate",
    "cloudpickle",
    "tqdm>4.29.0",
    "tensorboard",
    "omegaconf>=2.1",
    "hydra-core>=1.1",
    "matplotlib",
    "Pillow>=7.1",
    "setuptools<80",
]

# Replaces the sdist's setup.py, whose extension list needs the absent C++ sources.
SETUP_PY = """
from setuptools import find_packages, setup
setup(
    name="detectron2",
    version="0.6",
    description="detectron2 v0.6 python sources (from pb1-detectron2 0.6), no C++ extension",
    packages=find_packages(include=["detectron2", "detectron2.*"]),
    python_requires=">=3.7",
)
"""


def fail(message: str) -> "NoReturn":  # noqa: F821
    sys.exit(
        f"install_detectron2: {message}\n"
        "detectron2 is needed by sgnet. Either build it from source yourself "
        "(https://detectron2.readthedocs.io/en/latest/tutorials/install.html) into this "
        f"environment ({sys.executable}) and re-run, or make PyPI reachable so that "
        f"{SDIST_PROJECT}==0.6 can be fetched."
    )


def sdist_url() -> str:
    request = urllib.request.Request(
        INDEX_URL.format(project=SDIST_PROJECT),
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            index = json.load(response)
    except OSError as e:
        fail(f"cannot read the package index for {SDIST_PROJECT}: {e}")
    for entry in index.get("files", []):
        if entry["filename"] == SDIST_NAME:
            return entry["url"]
    fail(f"{SDIST_NAME} is not listed in the package index")


def download_verified(url: str, destination: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            payload = response.read()
    except OSError as e:
        fail(f"cannot download {url}: {e}")
    digest = hashlib.sha256(payload).hexdigest()
    if digest != SDIST_SHA256:
        fail(f"{url} has sha256 {digest}, expected {SDIST_SHA256}; refusing to install it")
    destination.write_bytes(payload)


def run_installer(command: list) -> None:
    try:
        subprocess.run(command, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        fail(f"`{shlex.join(command)}` failed: {e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--installer",
        default=f"{shlex.quote(sys.executable)} -m pip install",
        help="command that installs packages into this environment",
    )
    args = parser.parse_args()
    installer = shlex.split(args.installer)

    if importlib.util.find_spec("detectron2") is not None:
        print("install_detectron2: detectron2 already importable, left as it is")
        return

    with tempfile.TemporaryDirectory() as tmp:
        # Fetch and verify first, so that a failure leaves the environment untouched.
        archive = Path(tmp) / SDIST_NAME
        download_verified(sdist_url(), archive)
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("pb1-detectron2-0.6/detectron2/")]
            tar.extractall(tmp, members=members, filter="data")
        source = Path(tmp) / "pb1-detectron2-0.6"
        (source / "setup.py").write_text(SETUP_PY)
        run_installer(installer + RUNTIME_REQUIREMENTS)
        run_installer(installer + ["--no-deps", str(source)])
    print("install_detectron2: installed detectron2 0.6 (python sources, no C++ extension)")


if __name__ == "__main__":
    main()
