"""The plugin contract: `import sgnet` makes detectron2 usable here and registers SG-Net, and is a
no-op on a complete detectron2. Each case runs in a fresh interpreter: the compat layer acts on
import, once per process."""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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


def test_python_only_detectron2_gets_a_placeholder_extension():
    result = run_python(
        """
        import sgnet, sgnet.compat
        import detectron2, torchvision.ops  # torchvision must still import (dunders stay missing)
        from detectron2 import _C
        from detectron2.layers import deform_conv  # imports _C at module import time
        from PIL import Image
        print(sorted(sgnet.compat.applied))
        print(Image.LINEAR == Image.BILINEAR)
        try:
            _C.nms_rotated()
        except RuntimeError as e:
            print("error:", e)
        print(hasattr(_C, "__file__"))
        from detectron2.utils.collect_env import collect_env_info
        print("has_cuda:", _C.has_cuda(), "| env report:", "detectron2._C" not in collect_env_info())
        """
    )
    applied, linear, error, has_file, env_report = result.stdout.strip().splitlines()
    assert env_report == "has_cuda: False | env report: True"
    assert applied == "['PIL.Image.LINEAR alias', 'detectron2._C placeholder']"
    assert linear == "True"
    assert error.startswith("error: detectron2._C.nms_rotated was called")
    assert "compiled C++ extension" in error
    assert has_file == "False"


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


def test_detectron2_installer_leaves_an_importable_detectron2_alone():
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "install_detectron2.py"), "--installer", "false"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "already importable, left as it is" in result.stdout


@pytest.mark.skipif(
    shutil.which("make") is None or not (REPO / ".venv" / ".sgnet-installed").exists(),
    reason="only meaningful in the checkout's own `make install` environment",
)
def test_make_install_is_a_noop_when_up_to_date():
    result = subprocess.run(
        ["make", "-q", "install"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, "make install would redo work on an installed checkout"
