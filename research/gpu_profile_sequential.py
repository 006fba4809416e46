"""Where does a DiffuRec training batch spend its time on a GPU? (a device check)

    python research/gpu_profile_sequential.py --data-dir gpu_data --out build

Times training batches at the paper's settings with and without length chunks and bf16
autocast, then profiles a few batches with torch.profiler and prints the top operators.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))   # the recipes
from recipes.sequential import DIFFUREC, DIFFUREC_TRAIN, time_batches  # noqa: E402

from tutorial_lib.datasets import load_diffurec_pkl  # noqa: E402
from tutorial_lib.models.diffurec import DiffuRec  # noqa: E402
from tutorial_lib.utils import to_device  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--data-dir", default="gpu_data")
p.add_argument("--out", default="build")
a = p.parse_args()
data = load_diffurec_pkl(Path(a.data_dir) / "amazon_beauty" / "dataset.pkl")
for chunk, amp in [(None, True), (None, False), (128, False), (512, True)]:
    print(json.dumps(time_batches("diffurec", data, 20, "cuda", amp=amp, chunk_size=chunk)), flush=True)

model = DiffuRec(data.n_items, **DIFFUREC, chunk_size=128, amp=True).cuda()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
batches = model.batches(data, DIFFUREC_TRAIN["batch_size"], torch.Generator().manual_seed(0))


def step():
    loss = model.loss(to_device(next(batches), torch.device("cuda")))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


step()
torch.cuda.synchronize()
acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
with torch.profiler.profile(activities=acts) as prof:
    for _ in range(3):
        step()
    torch.cuda.synchronize()
table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
Path(a.out).mkdir(parents=True, exist_ok=True)
(Path(a.out) / "diffurec_profile.txt").write_text(table)
print(table[:6000])
