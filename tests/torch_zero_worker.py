"""Run by tests/test_torch_adapter.py: 2 processes (gloo on 127.0.0.1) train a small model with DDP and
torch.distributed.optim.ZeroRedundancyOptimizer(optimizer_class=fusedopt.torch.Adam); rank 0 saves the
final params. Usage: python torch_zero_worker.py PORT OUT_FILE"""

import sys

import torch

import fusedopt.torch as ft

STEPS, BATCH = 6, 16


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()


def batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(BATCH, 5, generator=g, dtype=torch.float64),
             torch.randn(BATCH, 3, generator=g, dtype=torch.float64)) for _ in range(STEPS)]


def worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist  # here: the test imports model() and batches() without these
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    net = DistributedDataParallel(model())
    opt = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=ft.Adam, lr=0.01, weight_decay=0.1)
    half = BATCH // 2
    for x, y in batches():  # each rank its half of the batch; DDP averages the grads
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x[rank * half:(rank + 1) * half]), y[rank * half:(rank + 1) * half]).backward()
        opt.step()
    if rank == 0:
        torch.save([p.detach().clone() for p in net.module.parameters()], out)
    dist.destroy_process_group()


if __name__ == "__main__":
    import torch.multiprocessing as mp

    torch.set_num_threads(1)
    mp.spawn(worker, args=(int(sys.argv[1]), sys.argv[2]), nprocs=2, join=True)
