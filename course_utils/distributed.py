"""Data-parallel training with ``DistributedDataParallel``, started by ``torchrun``.

    torchrun --standalone --nproc-per-node=2 -m course_utils.distributed [--epochs 2] [--images 2000]
    torchrun --standalone --nproc-per-node=2 -m course_utils.distributed --check-gradients grads.pt

Every process (a "rank") holds a full copy of the model and takes its own shard of each global
batch (``DistributedSampler``). After ``backward``, DDP all-reduces the gradients: each rank ends
up with the mean over all shards, which is the gradient of the whole batch, so every copy takes
the same optimizer step and the copies stay identical. The backend is NCCL when every rank has
its own GPU, gloo on the CPU otherwise.

``--check-gradients PATH`` runs one step on a fixed batch and saves rank 0's all-reduced
gradients, the batch and the initial weights to PATH, so that a notebook can compare them with
the gradients of the combined batch computed in a single process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

from course_utils import datasets, models

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
LAUNCH = "torchrun --standalone --nproc-per-node=2 -m course_utils.distributed"


def check_launched_by_torchrun() -> None:
    """Exit with a clear message when the rendezvous variables torchrun sets are missing."""
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        sys.exit(
            f"course_utils.distributed must be started by torchrun, which sets {', '.join(TORCHRUN_VARIABLES)} "
            f"for every process (missing: {', '.join(missing)}). Run:\n    {LAUNCH}"
        )


def small_alexnet(seed: int = 0, dropout: float = 0.5) -> models.AlexNet:
    """The CIFAR-sized AlexNet at a quarter width, with weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return models.AlexNet(input_size=32, num_classes=10, width=0.25, dropout=dropout)


def check_batch(size: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed batch of the gradient check: shapes10 images (size, 3, 32, 32) and labels."""
    return datasets.shapes10(size, seed=seed)


def start() -> tuple[int, int, torch.device]:
    """Join the process group; return (rank, world size, this rank's device)."""
    check_launched_by_torchrun()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available() and torch.cuda.device_count() >= int(
        os.environ.get("LOCAL_WORLD_SIZE", world)
    ):
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group(backend, device_id=device if backend == "nccl" else None)
    if rank == 0:
        print(f"{world} processes, backend {backend}, device {device.type}", flush=True)
    return rank, world, device


def gradient_check(path: str, rank: int, world: int, device: torch.device) -> None:
    """One DDP step on :func:`check_batch`, split evenly across ranks; rank 0 saves the result."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = small_alexnet(dropout=0.0).to(device)
    initial = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ddp = DDP(model)
    x, y = check_batch()
    if len(y) % world:
        raise ValueError(
            f"the check batch of {len(y)} does not split evenly over {world} processes"
        )
    shard = slice(rank * len(y) // world, (rank + 1) * len(y) // world)
    loss = F.cross_entropy(ddp(x[shard].to(device)), y[shard].to(device))
    loss.backward()  # DDP all-reduces (averages) the gradients across ranks here
    if rank == 0:
        grads = {name: p.grad.detach().cpu() for name, p in model.named_parameters()}
        torch.save({"world_size": world, "initial": initial, "grads": grads, "x": x, "y": y}, path)
        print(f"saved the all-reduced gradients of {len(grads)} tensors to {path}", flush=True)


def train(args, rank: int, world: int, device: torch.device) -> dict:
    """Train the small AlexNet on shapes10 with DDP; return rank 0's summary."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DistributedSampler, TensorDataset

    x, y = datasets.shapes10(args.images, seed=0)
    x_test, y_test = datasets.shapes10(1000, seed=1)
    model = DDP(small_alexnet(dropout=args.dropout).to(device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    sampler = DistributedSampler(
        TensorDataset(x, y), num_replicas=world, rank=rank, shuffle=True, seed=0
    )
    local_batch = args.batch_size // world
    start_time = time.perf_counter()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))
        model.train()
        totals = torch.zeros(3, device=device)  # loss sum, correct, count
        for first in range(0, len(order), local_batch):
            index = order[first : first + local_batch]
            xb, yb = x[index].to(device), y[index].to(device)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals += torch.stack(
                [
                    loss.detach() * len(yb),
                    (logits.argmax(1) == yb).sum(),
                    torch.tensor(len(yb), device=device),
                ]
            )
        dist.all_reduce(totals)  # sum over ranks
        if rank == 0:
            print(
                f"epoch {epoch + 1}: loss {totals[0] / totals[2]:.3f}, train accuracy {totals[1] / totals[2]:.2%} "
                f"over {int(totals[2])} images on {world} processes",
                flush=True,
            )
    seconds = time.perf_counter() - start_time
    model.eval()
    with torch.no_grad():
        accuracy = (model.module(x_test.to(device)).argmax(1).cpu() == y_test).float().mean().item()
    return {
        "world_size": world,
        "epochs": args.epochs,
        "images": args.images,
        "seconds": round(seconds, 2),
        "images_per_s": round(args.epochs * args.images / seconds),
        "test_accuracy": round(accuracy, 4),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="DDP training of a small AlexNet on shapes10 (run with torchrun)."
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument(
        "--batch-size", type=int, default=64, help="global batch, split over the processes"
    )
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        help="dropout before fc6/fc7 (0: learns faster in a short run)",
    )
    parser.add_argument(
        "--check-gradients", metavar="PATH", help="save one step's all-reduced gradients"
    )
    parser.add_argument("--summary", metavar="PATH", help="write rank 0's summary as JSON")
    args = parser.parse_args(argv)
    rank, world, device = start()
    try:
        if args.check_gradients:
            gradient_check(args.check_gradients, rank, world, device)
        else:
            summary = train(args, rank, world, device)
            if rank == 0:
                print(json.dumps(summary), flush=True)
                if args.summary:
                    with open(args.summary, "w") as handle:
                        json.dump(summary, handle)
        # Leave together: a rank that tears its connections down while its peer is still
        # finishing a collective or writing results can take the whole job down with it.
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
    # Once a DDP model has been built, the gloo process group and its threads outlive
    # destroy_process_group, and a rank can then abort while the interpreter shuts down
    # ("terminate called without an active exception", once in about 480 runs on 2 CPU cores).
    # Everything is written and flushed by now: leave without the C++ destructors.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
