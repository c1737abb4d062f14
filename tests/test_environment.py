"""The plugin contract: `import sgnet` makes detectron2 usable here and registers SG-Net, and is a
no-op on a complete detectron2. Each case runs in a fresh interpreter: the compat layer acts on
import, once per process."""
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALLER = REPO / "tools" / "install_detectron2.py"
PLACEHOLDER = REPO / "sgnet" / "_detectron2_c_placeholder.py"


def load_installer():
    """tools/install_detectron2.py as a module (its main() only runs as a script)."""
    spec = importlib.util.spec_from_file_location("install_detectron2", INSTALLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_python(code: str, env_extra=None, check=True) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, **(env_extra or {}))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_import_registers_plugin_and_engine_imports():
    result = run_python(
        """
        import sgnet
        from detectron2.config import get_cfg
        from detectron2.engine import DefaultTrainer  # the engine must import after sgnet
        from detectron2.modeling import META_ARCH_REGISTRY
        from detectron2.data import DatasetCatalog
        print("SGNet" in META_ARCH_REGISTRY, "ytvis_2019_train" in DatasetCatalog.list())
        cfg = get_cfg()
        sgnet.add_sgnet_config(cfg)
        print(cfg.MODEL.SGNET.NUM_CLASSES, cfg.MODEL.SGNET.TRACKER.LABEL_WEIGHT)
        """
    )
    assert result.stdout.split() == ["True", "True", "40", "10.0"]


def test_python_only_detectron2_has_a_placeholder_extension():
    """Whichever supplies it (the installer's ``detectron2/_C.py`` in the installed v0.6, or
    sgnet.compat for detectron2 main's sources on PYTHONPATH), ``_C`` is the one placeholder:
    ops raise a clear error when called, build queries answer, dunders behave normally."""
    result = run_python(
        """
        import sgnet, sgnet.compat
        import detectron2, torchvision.ops  # torchvision must still import (dunders stay missing)
        from detectron2 import _C
        from detectron2.layers import deform_conv  # imports _C at module import time
        from detectron2.data import DatasetCatalog  # v0.6's transforms name a Pillow filter at import
        import os
        own = os.path.exists(os.path.join(detectron2.__path__[0], "_C.py"))
        print(own, sorted(sgnet.compat.applied))
        print(_C.__file__ == (os.path.join(detectron2.__path__[0], "_C.py") if own else sgnet.compat.PLACEHOLDER_EXTENSION))
        try:
            _C.nms_rotated()
        except RuntimeError as e:
            print("error:", e)
        print(hasattr(_C, "__wrapped__"), hasattr(_C, "__path__"), type(_C.__file__).__name__)
        from detectron2.utils.collect_env import collect_env_info
        print("has_cuda:", _C.has_cuda(), "| env report:", "detectron2._C" not in collect_env_info())
        """
    )
    applied, same_file, error, dunders, env_report = result.stdout.strip().splitlines()
    own, _, applied = applied.partition(" ")
    # The installer's copy works on its own: compat adds nothing to it; main's sources get the placeholder.
    assert applied == ("[]" if own == "True" else "['detectron2._C placeholder']")
    assert same_file == "True"
    assert error.startswith("error: detectron2._C.nms_rotated was called")
    assert "compiled C++ extension" in error
    assert dunders == "False False str"
    assert env_report == "has_cuda: False | env report: True"


def test_compat_supplies_what_a_users_python_only_v06_lacks(tmp_path):
    """A python-only detectron2 of the user's, without ``_C`` and naming ``Image.LINEAR`` as v0.6
    as released does (stand-in: the leg's detectron2 copied, its ``_C.py`` left out, one such
    line added): ``import sgnet`` registers the shared placeholder and aliases the filter."""
    import detectron2

    shutil.copytree(
        Path(detectron2.__file__).parent,
        tmp_path / "detectron2",
        ignore=shutil.ignore_patterns("_C.py", "_sgnet_install.json", "__pycache__"),
    )
    transform = tmp_path / "detectron2" / "data" / "transforms" / "transform.py"
    transform.write_text(transform.read_text() + "\n_V06_DEFAULT_INTERP = Image.LINEAR  # as in v0.6's ExtentTransform\n")
    result = run_python(
        """
        from PIL import Image
        if hasattr(Image, "LINEAR"):  # Pillow < 10: as if it were newer
            del Image.LINEAR
        import sgnet, sgnet.compat
        from detectron2 import _C
        from detectron2.data import DatasetCatalog
        import detectron2.engine
        print(sorted(sgnet.compat.applied))
        print(_C.__file__ == sgnet.compat.PLACEHOLDER_EXTENSION, _C.__name__, Image.LINEAR == Image.BILINEAR)
        print(detectron2.__file__)
        """,
        env_extra={"PYTHONPATH": str(tmp_path)},
    )
    applied, placeholder, d2_file = result.stdout.strip().splitlines()
    assert applied == "['PIL.Image.LINEAR alias', 'detectron2._C placeholder']"
    assert placeholder == "True detectron2._C True"
    assert d2_file.startswith(str(tmp_path))


def test_noop_on_a_detectron2_with_its_compiled_extension(tmp_path):
    """A detectron2 tree with a `_C` module (stand-in for a source build) and a Pillow that still
    has LINEAR: `import sgnet` must leave both exactly as they were."""
    import detectron2

    shutil.copytree(Path(detectron2.__file__).parent, tmp_path / "detectron2")
    (tmp_path / "detectron2" / "_C.py").write_text("COMPILED = 'fake compiled extension'\n")
    result = run_python(
        """
        from PIL import Image
        sentinel = object()
        Image.LINEAR = sentinel
        import detectron2
        import sgnet, sgnet.compat
        from detectron2 import _C
        print(sgnet.compat.applied)
        print(_C.COMPILED, _C.__file__.startswith(detectron2.__path__[0]))
        print(Image.LINEAR is sentinel)
        print(detectron2.__file__)
        """,
        env_extra={"PYTHONPATH": str(tmp_path)},
    )
    applied, compiled, linear_kept, d2_file = result.stdout.strip().splitlines()
    assert applied == "[]"
    assert compiled == "fake compiled extension True"
    assert linear_kept == "True"
    assert d2_file.startswith(str(tmp_path))


def test_missing_detectron2_says_what_to_do():
    result = run_python(
        """
        import sys
        sys.modules["detectron2"] = None  # as if it were not installed
        import sgnet
        """,
        check=False,
    )
    assert result.returncode != 0
    assert "sgnet needs detectron2" in result.stderr
    assert "make install" in result.stderr


def test_detectron2_installer_fails_clearly_when_it_cannot_fetch():
    """detectron2 missing and not installable: the installer exits non-zero, says why and what to
    do, and installs nothing (its install command is `false`, which would fail if called)."""
    result = run_python(
        f"""
        import runpy, sys
        sys.modules["detectron2"] = None
        sys.argv = ["install_detectron2.py", "--installer", "false"]
        runpy.run_path({str(REPO / "tools" / "install_detectron2.py")!r}, run_name="__main__")
        """,
        env_extra={"SGNET_DETECTRON2_INDEX_URL": "http://127.0.0.1:9/simple/{project}/"},
        check=False,
    )
    assert result.returncode != 0
    assert "cannot read the package index for pb1-detectron2" in result.stderr
    assert "build it from source" in result.stderr


def run_installer_script(env_extra=None, installer="false"):
    return subprocess.run(
        [sys.executable, str(INSTALLER), "--installer", installer],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **(env_extra or {})),
    )


def test_detectron2_installer_leaves_a_users_detectron2_alone(tmp_path):
    """A detectron2 the installer did not install (no marker, not its distribution) is left as it
    is, even beside the installer's own copy (its install command `false` would fail if called)."""
    (tmp_path / "detectron2").mkdir()
    (tmp_path / "detectron2" / "__init__.py").write_text("__version__ = '0.6'\n")
    result = run_installer_script({"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "already importable" in result.stdout and "left as it is" in result.stdout
    assert str(tmp_path / "detectron2") in result.stdout


def test_detectron2_installer_has_nothing_to_do_in_this_environment():
    """Leg 1: the installed copy is the installer's, up to date (`make install` upgraded it);
    leg 2: detectron2 main's sources on PYTHONPATH are not the installer's, left alone."""
    result = run_installer_script()
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout or "left as it is" in result.stdout, result.stdout


def test_detectron2_installer_upgrades_its_own_unpatched_copy(tmp_path):
    """A copy installed by the installer before it patched the sources (recognised by its
    distribution's summary line, for the importable package itself) is reinstalled: here the
    reinstall stops at the unreachable index, after saying so."""
    installer = load_installer()
    (tmp_path / "detectron2").mkdir()
    (tmp_path / "detectron2" / "__init__.py").write_text("__version__ = '0.6'\n")
    info = tmp_path / "detectron2-0.6.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: detectron2\nVersion: 0.6\nSummary: {installer.LEGACY_SUMMARY}\n"
    )
    (info / "RECORD").write_text("detectron2/__init__.py,,\ndetectron2-0.6.dist-info/METADATA,,\n")
    result = run_installer_script(
        {"PYTHONPATH": str(tmp_path), "SGNET_DETECTRON2_INDEX_URL": "http://127.0.0.1:9/simple/{project}/"}
    )
    assert result.returncode != 0
    assert "upgrading detectron2 0.6 installed earlier by this script" in result.stdout
    assert "patch level 0 < " in result.stdout
    assert "cannot read the package index" in result.stderr


def test_installer_tells_its_own_copies_from_a_users(tmp_path, monkeypatch):
    installer = load_installer()
    ours = tmp_path / "ours" / "detectron2"
    ours.mkdir(parents=True)
    (ours / installer.MARKER).write_text(json.dumps({"patch_level": installer.PATCH_LEVEL}))
    assert installer.our_patch_level(ours) == installer.PATCH_LEVEL
    # The legacy summary line counts only for the distribution's own package folder.
    site = tmp_path / "site"
    (site / "detectron2").mkdir(parents=True)
    (site / "detectron2" / "__init__.py").write_text("")
    info = site / "detectron2-0.6.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: detectron2\nVersion: 0.6\nSummary: {installer.LEGACY_SUMMARY}\n")
    monkeypatch.syspath_prepend(str(site))
    assert installer.our_patch_level(site / "detectron2") == 0
    users = tmp_path / "checkout" / "detectron2"
    users.mkdir(parents=True)
    (users / "__init__.py").write_text("")
    assert installer.our_patch_level(users) is None
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: detectron2\nVersion: 0.6\nSummary: Detectron2 is FAIR's ...\n")
    assert installer.our_patch_level(site / "detectron2") is None


FAKE_TRANSFORM = """from PIL import Image


class ExtentTransform:
    def __init__(self, src_rect, output_size, interp=Image.LINEAR, fill=0):
        self.interp = interp  # cv2.INTER_LINEAR stays as it is
"""


def fake_sdist(tmp_path) -> Path:
    """A small stand-in for pb1-detectron2-0.6.tar.gz and a file:// index listing it."""
    files = {
        "pb1-detectron2-0.6/setup.py": "raise SystemExit('the sdist setup.py needs the C++ sources')\n",
        "pb1-detectron2-0.6/detectron2/__init__.py": "__version__ = '0.6'\n",
        "pb1-detectron2-0.6/detectron2/data/__init__.py": "",
        "pb1-detectron2-0.6/detectron2/data/transforms/__init__.py": "from .transform import *\n",
        "pb1-detectron2-0.6/detectron2/data/transforms/transform.py": FAKE_TRANSFORM,
        "pb1-detectron2-0.6/tools/outside.py": "from PIL import Image\nX = Image.LINEAR\n",
    }
    archive = tmp_path / "pb1-detectron2-0.6.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"files": [{"filename": archive.name, "url": archive.as_uri()}]}))
    return archive


def run_fake_install(tmp_path, monkeypatch, sha256):
    """The installer's main() on the fake sdist, with `sha256` as the expected hash; its install
    command records its arguments and keeps a copy of the folder it is asked to install."""
    installer = load_installer()
    archive = fake_sdist(tmp_path)
    recorder = tmp_path / "record.py"
    recorder.write_text(textwrap.dedent(f"""
        import json, os, shutil, sys
        with open({str(tmp_path / "calls.jsonl")!r}, "a") as log:
            log.write(json.dumps(sys.argv[1:]) + "\\n")
        if os.path.isdir(sys.argv[-1]):
            shutil.copytree(sys.argv[-1], {str(tmp_path / "installed")!r})
    """))
    events = []
    patch_sources = installer.patch_sources
    verify = installer.download_verified
    monkeypatch.setattr(installer, "download_verified", lambda *a: (events.append("verify"), verify(*a))[1])
    monkeypatch.setattr(installer, "patch_sources", lambda *a: (events.append("patch"), patch_sources(*a))[1])
    monkeypatch.setattr(installer, "importable_detectron2", lambda: None)
    monkeypatch.setattr(installer, "INDEX_URL", (tmp_path / "index.json").as_uri())
    monkeypatch.setattr(installer, "SDIST_SHA256", sha256(archive))
    monkeypatch.setattr(sys, "argv", ["install_detectron2.py", "--installer", f"{sys.executable} {recorder}"])
    installer.main()
    return installer, events


def test_installer_patches_the_verified_sdist_copy(tmp_path, monkeypatch, capsys):
    installer, events = run_fake_install(tmp_path, monkeypatch, lambda a: hashlib.sha256(a.read_bytes()).hexdigest())
    assert events == ["verify", "patch"]
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert calls[0] == installer.RUNTIME_REQUIREMENTS
    assert calls[1][:2] == ["--no-deps", "--force-reinstall"] and len(calls) == 2
    package = tmp_path / "installed" / "detectron2"
    transform = (package / "data" / "transforms" / "transform.py").read_text()
    assert transform == FAKE_TRANSFORM.replace("interp=Image.LINEAR", "interp=Image.BILINEAR")
    assert not (tmp_path / "installed" / "tools").exists()  # only detectron2/ is unpacked
    assert (package / "_C.py").read_bytes() == PLACEHOLDER.read_bytes()
    marker = json.loads((package / installer.MARKER).read_text())
    assert marker["patch_level"] == installer.PATCH_LEVEL
    assert marker["sha256"] == installer.SDIST_SHA256
    assert marker["patches"] == [
        "detectron2/data/transforms/transform.py: Image.LINEAR -> Image.BILINEAR (1)",
        "detectron2/_C.py: placeholder from sgnet/_detectron2_c_placeholder.py",
    ]
    assert installer.our_patch_level(package) == installer.PATCH_LEVEL
    setup_py = (tmp_path / "installed" / "setup.py").read_text()
    assert installer.MARKER in setup_py and "C++ sources" not in setup_py
    assert "patch level 1" in capsys.readouterr().out
    # The copied placeholder works on its own (no sgnet): ops raise, build queries answer.
    result = run_python(
        """
        from detectron2 import _C
        import sys
        try:
            _C.deform_conv_forward()
        except RuntimeError as e:
            print("error:", e)
        print(_C.has_cuda(), _C.get_cuda_version(), hasattr(_C, "__wrapped__"), "sgnet" in sys.modules)
        """,
        env_extra={"PYTHONPATH": str(tmp_path / "installed")},
    )
    error, info = result.stdout.strip().splitlines()
    assert error.startswith("error: detectron2._C.deform_conv_forward was called")
    assert info == "False none (python-only detectron2, no compiled extension) False False"


def test_installer_checks_the_hash_before_patching_or_installing(tmp_path, monkeypatch):
    with pytest.raises(SystemExit) as exit_info:
        run_fake_install(tmp_path, monkeypatch, lambda a: "0" * 64)
    assert "refusing to install it" in str(exit_info.value)
    assert not (tmp_path / "calls.jsonl").exists()  # nothing installed


def test_installed_detectron2_works_without_sgnet(tmp_path):
    """Issue 28: the detectron2 that the installer put in site-packages imports on its own, for
    scripts and other plugins that do not import sgnet. Checked on the installed copy on both
    legs (leg 2's PYTHONPATH, detectron2 main's sources, is left out here)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            import runpy
            installer = runpy.run_path({str(INSTALLER)!r}, run_name="installer")
            where = installer["importable_detectron2"]()
            print(where, where and installer["our_patch_level"](where))
        """)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    where, _, level = probe.stdout.strip().rpartition(" ")
    if level == "None":
        pytest.skip(f"the installed detectron2 ({where}) is not the installer's copy (a user's own build: its business)")
    assert int(level) == load_installer().PATCH_LEVEL, f"{where}: an unpatched earlier copy; run `make install`"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("""
            import sys
            from detectron2.data import DatasetCatalog
            import detectron2.engine
            from detectron2 import _C
            print("sgnet" in sys.modules, _C.has_cuda(), detectron2.__file__)
        """)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["False", "False"]
    assert result.stdout.split()[2].startswith(where)


@pytest.mark.skipif(
    shutil.which("make") is None or not (REPO / ".venv" / ".sgnet-installed").exists(),
    reason="only meaningful in the checkout's own `make install` environment",
)
def test_make_install_is_a_noop_when_up_to_date():
    result = subprocess.run(
        ["make", "-q", "install"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, "make install would redo work on an installed checkout"
