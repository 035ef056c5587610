"""Training of the paper's three stages: AVSyncNet, the silent-lip generator G_S and G_L.

`stablesync train syncnet|silent|generator --config FILE [--resume]` (see `cli.py`); configs are
TOML files validated into the dataclasses of `config.py`; data is the prepared-dataset layout
read by `data.py`; `loop.py` owns checkpoints, resume, logs and DistributedDataParallel.
"""
