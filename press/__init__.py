"""PRESS: probabilistic early exits for speech separation and enhancement."""

__version__ = "0.1.0"
