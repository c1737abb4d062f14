"""Helpers for tests of the repository's scripts (demo/, tools/), which are not in the package."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, module_name: str):
    """Import a script of the repository (e.g. "demo/demo.py") as a module named ``module_name``."""
    spec = importlib.util.spec_from_file_location(module_name, REPO / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_at_once(script: str, commands: dict, timeout: float = 300) -> dict:
    """Run ``python SCRIPT ARGS`` from the repository for each ``name: ARGS`` of ``commands``,
    all at the same time (each spends most of its time importing torch and detectron2).
    Returns ``name: CompletedProcess`` with ``returncode``, ``stdout`` and ``stderr`` (text)."""
    processes = {
        name: subprocess.Popen(
            [sys.executable, script, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, args in commands.items()
    }
    finished = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=timeout)
        finished[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return finished


def summary_line(stdout: str) -> dict:
    """A tool's JSON summary: the last line of its stdout."""
    return json.loads(stdout.strip().splitlines()[-1])


def one_error_line(stderr: str, prog: str, progress: str) -> str:
    """stderr besides the progress bars (lines starting with ``progress``): exactly one line,
    ``PROG: error: ...``, without a traceback. Returns it."""
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip() and not line.startswith(progress)]
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), stderr
    return lines[0]
