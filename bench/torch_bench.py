#!/usr/bin/python3
"""The PyTorch side of bench/run.sh: the same models, batch, thread count and data.

Trains softmax regression 784-10 or the MLP 784-256-128-10 on Fashion-MNIST (the HDF5
file xentrain uses, pixels / 255), SGD with momentum 0.9, `--batch` rows per process,
one thread per process, and prints one line "samples_per_s N" for the timed steps
(after warm-up). With --ddp, two processes train with DistributedDataParallel over gloo,
each on its half of the rows, and the total samples/s is printed (rank 0).
"""
import argparse
import os
import time

import h5py
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def load(path, rank, world):
    with h5py.File(path, "r") as f:
        n = f["train/X"].shape[0]
        lo, hi = rank * n // world, (rank + 1) * n // world
        x = f["train/X"][lo:hi].astype(np.float32) / 255.0
        y = f["train/y"][lo:hi].astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def build(model):
    if model == "softmax":
        return torch.nn.Linear(784, 10)
    return torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 10))


def run(rank, world, args, out):
    torch.set_num_threads(1)
    torch.manual_seed(42)
    if world > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(args.port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    x, y = load(args.data, rank, world)
    net = build(args.model)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()
    b = args.batch
    steps = x.shape[0] // b
    perm = torch.randperm(x.shape[0])

    def step(i):
        idx = perm[(i % steps) * b:(i % steps + 1) * b]
        opt.zero_grad(set_to_none=True)
        loss = lossf(net(x[idx]), y[idx])
        loss.backward()
        opt.step()

    for i in range(args.warmup):
        step(i)
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(args.warmup + i)
    if world > 1:
        dist.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        out.put(world * args.steps * b / dt)
    if world > 1:
        dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--model", choices=["softmax", "mlp"], required=True)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--ddp", action="store_true")
    p.add_argument("--port", type=int, default=29517)
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    world = 2 if args.ddp else 1
    if world == 1:
        run(0, 1, args, out)
    else:
        procs = [ctx.Process(target=run, args=(r, world, args, out)) for r in range(world)]
        for pr in procs:
            pr.start()
        for pr in procs:
            pr.join()
            if pr.exitcode != 0:
                raise SystemExit(f"DDP worker failed with exit code {pr.exitcode}")
    print(f"samples_per_s {out.get():.1f}")


if __name__ == "__main__":
    main()
