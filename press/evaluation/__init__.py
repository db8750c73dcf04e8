"""Evaluation: metrics, exit strategies, per-utterance analysis, evaluation runs and figures."""
