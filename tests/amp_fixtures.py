"""Float32 against autocast inference for the tests: ``tools/amp_comparison.py``, which
``tools/gpu_check.py`` applies on CUDA with the same tolerances (tools may not import tests)."""
from app_fixtures import load_script

_comparison = load_script("tools/amp_comparison.py", "sgnet_amp_comparison")
Tolerance = _comparison.Tolerance
TOLERANCES = _comparison.TOLERANCES
stream = _comparison.stream
compare_streams = _comparison.compare_streams
