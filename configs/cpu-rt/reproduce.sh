#!/usr/bin/env bash
# Reproduces the shipped cpu-rt weights and their held-out report (see docs/training.md).
# The shipped weights are a fine-tune (configs/cpu-rt/finetune/: sessions 4 and 5, the last
# phase polish.toml) of the session-2 weights, which were trained from scratch by
# configs/cpu-rt/{syncnet,silent,generator}.toml.
# By default the session-2 weights are taken from the repository's history (exact lineage);
# FROM_SCRATCH=1 trains them again first (close to, not bit-equal with, session 2's run).
# Every step resumes where it stopped: run it again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/../.."
S=.venv/bin/stablesync
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
$S data synth --out runs/corpus-synth --clips 240 --seconds 4 --seed 1 --workers 2 --quiet
$S data prepare runs/corpus-synth runs/data/prepared --workers 2 --quiet
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
SESSION2=runs/cpu-rt/session2/lipsync.safetensors
mkdir -p "$(dirname "$SESSION2")"
if [ "${FROM_SCRATCH:-0}" = 1 ]; then
    $S train syncnet --config configs/cpu-rt/syncnet.toml $(resume runs/cpu-rt/syncnet)
    $S train silent --config configs/cpu-rt/silent.toml $(resume runs/cpu-rt/silent)
    $S train generator --config configs/cpu-rt/generator.toml $(resume runs/cpu-rt/generator)
    cp runs/cpu-rt/generator/last.safetensors "$SESSION2"
elif [ ! -f "$SESSION2" ]; then
    git show b06b9d6:stablesync/assets/weights/cpu-rt/lipsync.safetensors > "$SESSION2.partial"
    mv "$SESSION2.partial" "$SESSION2"
fi
$S train syncnet --config configs/cpu-rt/finetune/syncnet.toml $(resume runs/cpu-rt/ft-syncnet)
$S train silent --config configs/cpu-rt/finetune/silent.toml $(resume runs/cpu-rt/ft-silent)
$S train generator --config configs/cpu-rt/finetune/generator.toml $(resume runs/cpu-rt/ft-generator)
$S train generator --config configs/cpu-rt/finetune/polish.toml $(resume runs/cpu-rt/ft-polish)
cp runs/cpu-rt/ft-syncnet/best.safetensors runs/cpu-rt/ft-polish/syncnet.safetensors
$S eval --checkpoint runs/cpu-rt/ft-polish/last.safetensors --data runs/data/prepared \
    --out runs/cpu-rt/heldout.json --threads 2
$S export --checkpoint runs/cpu-rt/ft-polish/last.safetensors --fp16-weights \
    --out runs/cpu-rt/export --corpus runs/data/prepared --threads 2
# the AVSyncNet ships beside the weights (fp16), so that eval works on the export as it stands
.venv/bin/python -c "import sys, torch; from stablesync import checkpoint; \
m, c = checkpoint.load(sys.argv[1], expect_arch='avsyncnet'); \
checkpoint.save(sys.argv[2], m, c, dtype=torch.float16)" \
    runs/cpu-rt/ft-syncnet/best.safetensors runs/cpu-rt/export/syncnet.safetensors
