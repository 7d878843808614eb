"""A small DDP training script (gloo, CPU) with plantable bugs, run by the tests under torchrun.

    torchrun --nproc_per_node=2 ddp_train.py [--no-set-epoch] [--nudge] [--batchnorm | --syncbn]
        [--no-sampler | --rank-seeded-shuffle]
"""

import argparse

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

parser = argparse.ArgumentParser()
parser.add_argument("--no-set-epoch", action="store_true")
parser.add_argument("--nudge", action="store_true")
parser.add_argument("--batchnorm", action="store_true")
parser.add_argument("--syncbn", action="store_true")  # needs GPUs: SyncBatchNorm rejects CPU modules
parser.add_argument("--frozen-bn", action="store_true")
parser.add_argument("--crash-rank1", action="store_true")
parser.add_argument("--no-sampler", action="store_true")  # every rank shuffles with the same seed
parser.add_argument("--rank-seeded-shuffle", action="store_true")  # no sampler, but a seed per rank
args = parser.parse_args()

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
data = TensorDataset(torch.randn(64, 8), torch.randint(0, 3, (64,)))
sampler = DistributedSampler(data, shuffle=True, seed=0)
if args.no_sampler:
    loader = DataLoader(data, batch_size=8, shuffle=True)
elif args.rank_seeded_shuffle:
    loader = DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(rank))
else:
    loader = DataLoader(data, batch_size=8, sampler=sampler)
layers = [nn.Linear(8, 16)] + ([nn.BatchNorm1d(16)] if args.batchnorm or args.syncbn else []) + [nn.ReLU(), nn.Linear(16, 3)]
model = nn.Sequential(*layers)
if args.syncbn:
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
model = DistributedDataParallel(model)
if args.nudge and rank == 1:
    with torch.no_grad():
        model.module[0].weight[0, 0] += 1e-3  # one rank drifts; DDP does not notice
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

for epoch in range(3):
    if not args.no_set_epoch:
        sampler.set_epoch(epoch)
    model.train()
    if args.frozen_bn:  # fine-tuning with frozen BatchNorm statistics: nothing to synchronise
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.eval()
    for x, y in loader:
        if args.crash_rank1 and rank == 1 and epoch == 1:
            raise RuntimeError("rank 1 fails")
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
# No dist.destroy_process_group(): with gloo on torch 2.13 it made the upstream teardown abort
# (see tests/torchrun_jobs.py) more frequent: 2 runs in 8 with it, 0 in 8 without, unloaded.
