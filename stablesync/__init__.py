"""stablesync: the paper's system (models, audio features, losses, data, training, evaluation).

This package's top level imports nothing heavy: the real-time path imports `stablesync.audio`
and friends without ever importing torch. Only `stablesync.models`, `stablesync.losses`,
`stablesync.checkpoint`, training and evaluation need torch.
"""

__version__ = "0.1.0"
