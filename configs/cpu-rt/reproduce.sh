#!/usr/bin/env bash
# Reproduces the shipped cpu-rt weights and their held-out report (see docs/training.md).
# Every step resumes where it stopped: run it again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/../.."
S=.venv/bin/stablesync
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
$S data synth --out runs/corpus-synth --clips 240 --seconds 4 --seed 1 --workers 1 --quiet
$S data prepare runs/corpus-synth runs/data/prepared --workers 2 --quiet
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
$S train syncnet --config configs/cpu-rt/syncnet.toml $(resume runs/cpu-rt/syncnet)
$S train silent --config configs/cpu-rt/silent.toml $(resume runs/cpu-rt/silent)
$S train generator --config configs/cpu-rt/generator.toml $(resume runs/cpu-rt/generator)
cp runs/cpu-rt/syncnet/best.safetensors runs/cpu-rt/generator/syncnet.safetensors
$S eval --checkpoint runs/cpu-rt/generator/last.safetensors --data runs/data/prepared \
    --out runs/cpu-rt/heldout.json --threads 1
$S export --checkpoint runs/cpu-rt/generator/last.safetensors --fp16-weights \
    --out runs/cpu-rt/export --corpus runs/data/prepared
