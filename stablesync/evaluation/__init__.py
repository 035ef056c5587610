"""Evaluation like the paper: `stablesync eval --checkpoint CKPT --data DIR --out report.json`.

`sync.py` holds the sync metrics computed with our AVSyncNet (LSE-C/D, offset accuracy, the
cosine fluctuation of the stability claim), `mouth.py` the landmark metrics (mediapipe),
`images.py` PSNR/SSIM, `run.py` the protocol over a prepared split.
"""
