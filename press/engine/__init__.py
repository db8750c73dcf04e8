"""The inference engine, in numpy: everything about separating with early exits except the network.

A backend (`backend.Backend`) runs the network on a batch of windows, one exit at a time:
press.inference.runner runs a PressNet with torch, press.runtime the exported ONNX graphs. The
rest is here once, so that the two cannot differ, and without torch, so that the ONNX runtime
needs none (an import-linter contract in pyproject.toml checks it):

    backend      what the engine asks of a network: exit 1 of a batch of windows, the next exit, a subset
    plan         where the segments lie, their context and window levels
    rule         exit probabilities and expected exit-SNR from alpha, beta (docs/exits.md)
    policies     which segments leave after an exit: PRESS's rule, a fixed exit, a budget, ...
    thresholds   a compute budget turned into a threshold on expected quality
    permutation  the one speaker-permutation solver
    stitch       segments' outputs into one signal, speakers aligned across segments
    loop         the loop: cut, run exit by exit, let segments leave, stitch, count compute
    results      what a run returns; report: the per-file JSON report
    model        a loaded model's front: options to a policy, files streamed, the report
"""
