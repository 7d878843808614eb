"""Loaded by every Python process that `trainguard run` starts (its folder is put first on
PYTHONPATH). It arms the guard in the user's process and then hands over to any sitecustomize
that this one shadows. Kept tiny: the work is in trainguard.runtime.bootstrap."""


def _arm() -> None:
    import os
    import sys

    try:
        from trainguard.runtime.bootstrap import arm
    except ImportError:
        # This file lies in <checkout>/trainguard/runtime/bootstrap when trainguard runs from a checkout.
        source = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        how = f"pip install -e {source}" if os.path.isfile(os.path.join(source, "pyproject.toml")) else "pip install -e PATH-OF-A-TRAINGUARD-CHECKOUT"
        sys.stderr.write(
            f"trainguard run: trainguard is not installed for {sys.executable}; install it in the "
            f"environment that runs your script ({how})\n"
        )
        os._exit(2)
    arm()


def _chain() -> None:
    """Import the sitecustomize this file shadows, if there is one."""
    import importlib
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    saved = list(sys.path)
    module = sys.modules.pop("sitecustomize", None)
    try:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
        importlib.import_module("sitecustomize")
    except ImportError:
        pass
    finally:
        sys.path[:] = saved
        if module is not None:
            sys.modules["sitecustomize"] = module


_arm()
_chain()
