"""The one error type of deployment: bad files, configs or missing packages, in one line."""
from ..errors import InvalidInput


class DeployError(InvalidInput):
    """A model file that cannot be exported or run as asked; the message names the file. A
    :class:`sgnet.errors.UserError`: the apps report it in one line."""


def require(module: str):
    """Import ``module`` (onnx, onnxslim, onnxruntime, openvino) or fail with how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise DeployError(
            f"{module} is not installed: deployment needs the deploy extra (pip install 'sgnet[deploy]', "
            "or make install in the sgnet checkout)"
        ) from e
