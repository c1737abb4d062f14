"""Install detectron2 into the current Python environment when it is not importable.

detectron2 is not published on PyPI under its own name. On machines without a source build, this
script installs the PyPI repackaging of detectron2 v0.6's python sources (``pb1-detectron2==0.6``),
verified by its sha256, *without* its C++ extension (that sdist does not ship the C++ sources).

After the hash check and before installing, the unpacked copy gets two small changes
(:func:`patch_sources`) so that the installed detectron2 works on its own, without sgnet:

1. ``Image.LINEAR`` becomes ``Image.BILINEAR`` (the same filter; Pillow >= 10 removed the old
   name, which v0.6's ``data/transforms/transform.py`` uses as a default argument at import time);
2. ``detectron2/_C.py`` is written from ``sgnet/_detectron2_c_placeholder.py``: v0.6's
   ``layers.deform_conv``, ``layers.rotated_boxes``, ``layers.roi_align_rotated`` and
   ``evaluation.fast_eval_api`` import ``_C`` at import time; its ops raise a clear error if called.

A marker file, ``detectron2/_sgnet_install.json``, records the install and its patch level. An importable
detectron2 (for example a user's own source build) is never touched; only a copy this script
installed earlier is reinstalled, when its patch level is older than this script's (copies from
before the marker existed are recognised by their distribution's summary line).

Usage: python tools/install_detectron2.py [--installer "uv pip install --python PY"]
"""
import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
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

REPO = Path(__file__).resolve().parents[1]
# The one source of the `detectron2._C` placeholder (sgnet.compat loads the same file).
PLACEHOLDER_SOURCE = REPO / "sgnet" / "_detectron2_c_placeholder.py"
# Written into the installed package: what installed it, from which sdist, at which patch level.
MARKER = "_sgnet_install.json"
# Raise when patch_sources changes, so that `make install` upgrades earlier copies.
PATCH_LEVEL = 1
# The summary line of copies installed before the marker existed (patch level 0: unpatched).
LEGACY_SUMMARY = "detectron2 v0.6 python sources (from pb1-detectron2 0.6), no C++ extension"

# Replaces the sdist's setup.py, whose extension list needs the absent C++ sources.
SETUP_PY = f"""
from setuptools import find_packages, setup
setup(
    name="detectron2",
    version="0.6",
    description="detectron2 v0.6 python sources (from pb1-detectron2 0.6), no C++ extension, "
    "patched by sgnet's tools/install_detectron2.py (patch level {PATCH_LEVEL})",
    packages=find_packages(include=["detectron2", "detectron2.*"]),
    package_data={{"detectron2": [{MARKER!r}]}},
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


def patch_sources(source: Path) -> dict:
    """Make the unpacked (hash-checked) sdist copy at ``source`` work on its own; returns the marker
    written into it. Only this copy is changed, never an installed detectron2."""
    package = source / "detectron2"
    patched = []
    # 1. Pillow >= 10 has no LINEAR; BILINEAR is the same filter (Pillow aliased one to the other).
    linear = re.compile(r"\bImage\.LINEAR\b")
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        new, count = linear.subn("Image.BILINEAR", text)
        if count:
            path.write_text(new, encoding="utf-8")
            patched.append(f"{path.relative_to(source).as_posix()}: Image.LINEAR -> Image.BILINEAR ({count})")
    if not patched:
        fail("no Image.LINEAR found in the sdist's sources; this script does not know this sdist")
    # 2. The `_C` placeholder: ops raise a clear error when called.
    if (package / "_C.py").exists() or list(package.glob("_C.*.so")):
        fail("the sdist already has a detectron2/_C module; this script does not know this sdist")
    shutil.copyfile(PLACEHOLDER_SOURCE, package / "_C.py")
    patched.append(f"detectron2/_C.py: placeholder from sgnet/{PLACEHOLDER_SOURCE.name}")
    marker = {
        "installed_by": "sgnet tools/install_detectron2.py",
        "sdist": SDIST_NAME,
        "sha256": SDIST_SHA256,
        "patch_level": PATCH_LEVEL,
        "patches": patched,
    }
    (package / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return marker


def prepared_sources(workdir: Path):
    """The sdist downloaded into ``workdir``, hash-checked, its python sources unpacked and
    patched (:func:`patch_sources`), with a setup.py that installs them: (the source folder, the
    marker). Also used by ``tools/device_bundle.py``."""
    archive = workdir / SDIST_NAME
    download_verified(sdist_url(), archive)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("pb1-detectron2-0.6/detectron2/")]
        tar.extractall(workdir, members=members, filter="data")
    source = workdir / "pb1-detectron2-0.6"
    marker = patch_sources(source)
    (source / "setup.py").write_text(SETUP_PY)
    return source, marker


def our_patch_level(package_dir: Path):
    """The patch level of the detectron2 package at ``package_dir`` if this script installed it,
    else None (a detectron2 of the user's, to be left alone)."""
    try:
        return int(json.loads((package_dir / MARKER).read_text(encoding="utf-8"))["patch_level"])
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable marker: not provably ours
    # Installed before the marker existed: our summary line, and the importable package is that
    # distribution's own (not, say, a source checkout on PYTHONPATH shadowing it).
    try:
        dist = importlib.metadata.distribution("detectron2")
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.metadata.get("Summary") != LEGACY_SUMMARY:
        return None
    init = Path(dist.locate_file("detectron2/__init__.py"))
    try:
        return 0 if init.resolve() == (package_dir / "__init__.py").resolve() else None
    except OSError:
        return None


def importable_detectron2():
    """The folder of the importable detectron2 package, or None when there is none."""
    spec = importlib.util.find_spec("detectron2")
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    return Path(locations[0]) if locations else Path(spec.origin).parent


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

    existing = importable_detectron2()
    if existing is not None:
        level = our_patch_level(existing)
        if level is None:
            print(f"install_detectron2: detectron2 already importable ({existing}), left as it is")
            return
        if level >= PATCH_LEVEL:
            print(f"install_detectron2: detectron2 0.6 installed by this script ({existing}, patch level {level}) is up to date")
            return
        print(f"install_detectron2: upgrading detectron2 0.6 installed earlier by this script ({existing}, patch level {level} < {PATCH_LEVEL})")

    with tempfile.TemporaryDirectory() as tmp:
        # Fetch and verify first, so that a failure leaves the environment untouched.
        source, marker = prepared_sources(Path(tmp))
        run_installer(installer + RUNTIME_REQUIREMENTS)
        # --force-reinstall (pip and uv): the same version 0.6 replaces an earlier, unpatched copy.
        run_installer(installer + ["--no-deps", "--force-reinstall", str(source)])
    print(
        f"install_detectron2: installed detectron2 0.6 (python sources, no C++ extension; patch level {PATCH_LEVEL}: "
        + "; ".join(marker["patches"]) + ")"
    )


if __name__ == "__main__":
    main()
