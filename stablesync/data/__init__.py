"""Training data: the synthetic talking-face corpus (`synth`) and real-dataset preparation (`prepare`).

Generation needs espeak-ng (C library), mediapipe, OpenCV, PyAV, scikit-image and matplotlib
(for the real face photos); no torch.
"""
