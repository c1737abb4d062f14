"""Helpers for tests of the repository's scripts (demo/, tools/), which are not in the package."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, module_name: str):
    """Import a script of the repository (e.g. "demo/demo.py") as a module named ``module_name``."""
    spec = importlib.util.spec_from_file_location(module_name, REPO / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
