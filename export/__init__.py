"""Export of checkpoints to ONNX/TensorRT, and the inference engines the real-time path runs on.

The engines (`load_engine`) never import torch, except the "torch" backend.
"""

from stablesync.export.engine import Engine, ReferenceFeatures, load_engine, split_features, stack_features

__all__ = ["Engine", "ReferenceFeatures", "load_engine", "split_features", "stack_features"]
