"""PRESS: probabilistic early exits for speech separation and enhancement.

The package is layered; each imports only the ones below it (enforced by tests/test_layers.py):

    commands, cli     the `press` command line
    api               press.load(...).separate(...)
    training          the training loop, its schedule, state, data plan and records
    evaluation        metrics, strategies, analysis, evaluation runs and figures
    inference         segment plan, exit policies, the block-wise runner, stitching, traces
    prob              block energies, speaker permutation, likelihood, exit probabilities, calibration
    model, data       PRESS-Net (config, blocks, heads, compute, checkpoints); corpora and mixing
    io                audio files, streaming readers and writers, atomic writes
"""

from press.version import __version__

__all__ = ["__version__", "load", "tune_process"]


def load(model: str = "default", device: str | None = None):
    """A shipped model by name or a checkpoint path, ready to `.separate(...)` (see press.api)."""
    from press.api import load as _load

    return _load(model, device)


def tune_process():
    """Opt in to the process-wide settings the `press` command uses: flush-denormal floats and freed
    memory kept in the heap (press.allocator). Call it first thing; `press.load` never does. Returns
    which of the two took effect."""
    from press.allocator import tune_process as _tune

    return _tune()
