#!/usr/bin/env bash
# The ablation on the held-out split: four equal-budget G_L runs (a-d) from the same G_S weights,
# each evaluated on the first N test clips, then the table and plots (docs/ablation.md quotes them).
# Needs runs/cpu-rt/syncnet, runs/cpu-rt/silent (configs/cpu-rt/reproduce.sh) and the
# Wav2Lip-sized SyncNet (configs/ablation/wav2lip_syncnet.toml). Resumable: run it again.
set -euo pipefail
cd "$(dirname "$0")/../.."
S=.venv/bin/stablesync
CLIPS=${CLIPS:-8}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for run in a_plain_no_gs b_plain_gs c_stabilized_gs d_full; do
    out=runs/ablation/${run%%_*}
    # a finished run resumes straight to its end
    $S train generator --config configs/ablation/$run.toml $([ -f "$out/state.safetensors" ] && echo --resume)
    [ -f "$out/eval.json" ] || $S eval --checkpoint "$out/last.safetensors" --data runs/data/prepared \
        --syncnet runs/cpu-rt/syncnet/best.safetensors --max-clips "$CLIPS" --out "$out/eval.json" --threads 1
done
.venv/bin/python -m stablesync.evaluation.ablation --data runs/data/prepared \
    --run a=runs/ablation/a --run b=runs/ablation/b --run c=runs/ablation/c --run d=runs/ablation/d \
    --syncnet runs/cpu-rt/syncnet/best.safetensors \
    --baseline runs/ablation/wav2lip_syncnet/best.safetensors \
    --out docs/ablation.json --plots docs
