"""The parts of the training loop in `press.training.loop`, one concept per module.

config: the typed `loss`, `train`, `finetune` and `data` sections and their defaults;
loss: the paper's likelihood (`press.prob`) on the network's exits;
schedule: the learning rate as a pure function of the step; data: the deterministic batch plan;
state: what a checkpoint must hold for an exact resume; distributed: ranks and their agreement;
records: what a run leaves on disk (CSV, TensorBoard, curves, config, provenance).
"""
