"""tools/run_tests.py, the README's test command: both detectron2 legs, and a missing main
snapshot skipped with its reason outside CI but failing in CI."""
import pytest

from app_fixtures import load_script

PROBE = """
import detectron2

def test_which_detectron2():
    print(detectron2.__file__)
    assert getattr(detectron2, "FAKE_MAIN", False) == {expect_fake}
"""


@pytest.fixture
def runner(monkeypatch, tmp_path):
    module = load_script("tools/run_tests.py", "sgnet_run_tests")
    monkeypatch.setattr(module, "SNAPSHOT_PATTERN", str(tmp_path / "nowhere" / "detectron2-main-*.tar.gz"))
    monkeypatch.delenv("SGNET_DETECTRON2_MAIN", raising=False)
    return module


def probe_test(tmp_path, expect_fake: bool) -> str:
    path = tmp_path / "probe" / "test_probe.py"
    path.parent.mkdir()
    path.write_text(PROBE.format(expect_fake=expect_fake))
    return str(path)


def fake_main_snapshot(tmp_path) -> str:
    """A stand-in for detectron2 main's sources: a folder holding a detectron2 package."""
    package = tmp_path / "snapshot" / "detectron2-main" / "detectron2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("FAKE_MAIN = True\n__version__ = 'main'\n")
    return str(tmp_path / "snapshot")


@pytest.mark.parametrize("in_ci", [False, True])
def test_missing_snapshot_is_skipped_with_its_reason_outside_ci_and_fails_in_ci(runner, tmp_path, monkeypatch, capsys, in_ci):
    monkeypatch.setenv("CI", "true" if in_ci else "false")
    code = runner.main([probe_test(tmp_path, expect_fake=False)])
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("leg 2/2"))
    assert ("FAILED" if in_ci else "SKIPPED") in line and "no detectron2 main snapshot" in line
    if in_ci:  # failed before running anything
        assert code == 1 and "leg 1/2" not in out
    else:
        assert code == 0 and "leg 1/2: the installed detectron2: passed: 1 passed" in out


def test_second_leg_imports_the_snapshot_first(runner, tmp_path, monkeypatch, capsys):
    # The probe passes only where it imports the fake "main": leg 1 fails, leg 2 passes.
    monkeypatch.setenv("SGNET_DETECTRON2_MAIN", fake_main_snapshot(tmp_path))
    code = runner.main([probe_test(tmp_path, expect_fake=True)])
    out = capsys.readouterr().out
    assert "leg 1/2: the installed detectron2: FAILED" in out
    assert "leg 2/2: detectron2 main from" in out and ": passed: 1 passed" in out
    assert "total: 1 passed, 1 failed" in out
    assert code == 1
