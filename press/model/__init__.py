"""PRESS-Net and its configuration."""

from press.model.config import ModelConfig, config_names, load_config, model_config
from press.model.press_net import ExitOutput, ExitState, PressNet

__all__ = ["ExitOutput", "ExitState", "ModelConfig", "PressNet", "config_names", "load_config",
           "model_config"]
