"""PRESS: probabilistic early exits for speech separation and enhancement."""

__version__ = "0.1.0"


def load(model: str = "default", device: str = "cpu"):
    """A shipped model by name or a checkpoint path, ready to `.separate(...)` (see press.api)."""
    from press.api import load as _load

    return _load(model, device)
