"""tools/device_bundle.py: the GPU machine's missing packages, as wheels for its Python (3.12),
resolvable there next to what it has, small enough to carry; and tools/gpu_check.py, which runs
there, needs nothing from tests/. Needs the package index (as `make install` does)."""
import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from app_fixtures import load_script

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def device_bundle():
    return load_script("tools/device_bundle.py", "sgnet_device_bundle")


def imported_modules(path: Path) -> set:
    """Top-level names of every import in ``path`` (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_gpu_check_imports_nothing_from_tests():
    """gpu_check.py, and the repository's modules it imports (tools/, train_net.py), name no
    module of tests/ (which the bundle's command does not put on the path)."""
    test_modules = {path.stem for path in (REPO / "tests").glob("*.py")}
    local = {path.stem: path for path in [*(REPO / "tools").glob("*.py"), REPO / "train_net.py"]}
    seen, pending = set(), ["gpu_check"]
    while pending:
        name = pending.pop()
        seen.add(name)
        imports = imported_modules(local[name])
        assert not imports & test_modules, f"{local[name]} imports {imports & test_modules} from tests/"
        pending += [module for module in imports if module in local and module not in seen]
    assert {"gpu_check", "benchmark", "amp_comparison", "toy_scene", "train_net"} <= seen
    # Nor do they put tests/ on the path themselves.
    for name in seen:
        strings = {n.value for n in ast.walk(ast.parse(local[name].read_text())) if isinstance(n, ast.Constant)}
        assert "tests" not in strings, local[name]


def test_bundle_holds_what_the_gpu_machine_lacks_for_python_3_12(device_bundle, tmp_path, capsys):
    output = tmp_path / "bundle"
    assert device_bundle.main(["--output", str(output)]) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((output / "bundle.json").read_text())
    wheels = sorted(path.name for path in (output / "wheels").glob("*.whl"))
    assert manifest["wheels"] == wheels and manifest["python"] == "3.12"
    names = {device_bundle.normalise(name.split("-")[0]) for name in wheels}
    lacking = {"detectron2", "fvcore", "iopath", "yacs", "pycocotools", "av", "omegaconf", "hydra-core", "termcolor"}
    assert lacking <= names and not names & device_bundle.DEVICE_HAS
    size = sum(path.stat().st_size for path in output.rglob("*") if path.is_file()) / 2**20
    assert size == pytest.approx(manifest["mib"], abs=0.1) and size < 60
    print(f"bundle: {len(wheels)} wheels, {size:.1f} MiB")
    # detectron2 0.6 as install_detectron2 patches it: the _C placeholder and the marker.
    with zipfile.ZipFile(next((output / "wheels").glob("detectron2-0.6-*.whl"))) as wheel:
        assert {"detectron2/_C.py", "detectron2/_sgnet_install.json"} <= set(wheel.namelist())
    # Resolvable for CPython 3.12 on x86-64 Linux: each wheel installs there (its tags; from the
    # bundle alone, no dependencies), and the bundle's pins with their dependencies resolve to
    # nothing but the bundle's versions and what the machine has.
    pins = [f"{name}=={version}" for name, version in (wheel[:-4].split("-")[:2] for wheel in wheels)]

    def dry_run(*options):
        report = tmp_path / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed", "--target",
             str(tmp_path / "t"), "--report", str(report), *device_bundle.target_options(), *options, *pins],
            check=True, capture_output=True,
        )  # fmt: skip
        return {device_bundle.normalise(i["metadata"]["name"]): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}

    bundled = dry_run("--no-index", "--no-deps", "--find-links", str(output / "wheels"))
    assert len(bundled) == len(wheels)
    needed = dry_run("--find-links", str(output / "wheels"))
    assert {name: version for name, version in needed.items() if name not in device_bundle.DEVICE_HAS} == bundled
    # The one command: installs the wheels next to the machine's packages, runs gpu_check.py.
    command = printed.strip().splitlines()[-1]
    assert "--no-index --no-deps --target" in command and command.endswith("python3 tools/gpu_check.py")
    assert str(output / "wheels") not in command or "outside the repository" in printed


def test_a_folder_of_other_files_is_refused(device_bundle, tmp_path, capsys):
    output = tmp_path / "mine"
    output.mkdir()
    (output / "notes.txt").write_text("keep me")
    assert device_bundle.main(["--output", str(output)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(output) in error and "holds other files than an earlier bundle" in error
    assert (output / "notes.txt").read_text() == "keep me"
