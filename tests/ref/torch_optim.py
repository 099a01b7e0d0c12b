#!/usr/bin/env python3
"""Reference trajectories for tests/cli/optimizers.sh: torch.optim.Adam and AdamW in float64.

Writes tests/ref/torch_optim.txt (or the path given): a small classification problem (N rows,
D float32 features, K classes, written exactly) and, for each case, the training loss before
each of STEPS full-batch updates of softmax regression from zero weights and biases:
  loss_t = F.cross_entropy(X W^T + b, y)   (mean over the rows), then optimizer.step()
which is what xentrain's metrics.csv reports as train_loss for epoch t with
train.batch_size = 0 (full batch), model.init = zeros and data.normalize = none.
Run with Debian's /usr/bin/python3 (python3-torch); CI reruns it when torch is present and
requires the committed file to match.
"""
import sys

import torch
import torch.nn.functional as F

N, D, K, STEPS = 48, 5, 3, 25
CASES = [  # name, optimizer, lr, weight_decay, betas, eps
    ("adam", "adam", 0.05, 0.0, (0.9, 0.999), 1e-8),
    ("adam_l2", "adam", 0.05, 0.1, (0.9, 0.999), 1e-8),
    ("adamw", "adamw", 0.05, 0.1, (0.9, 0.999), 1e-8),
    ("adamw_betas", "adamw", 0.02, 0.01, (0.8, 0.99), 1e-6),
]


def main(out_path):
    gen = torch.Generator().manual_seed(7)
    y = torch.randint(0, K, (N,), generator=gen)
    centres = torch.randn(K, D, generator=gen, dtype=torch.float64) * 1.5
    x32 = (centres[y] + torch.randn(N, D, generator=gen, dtype=torch.float64)).float()
    x = x32.double()  # the float32 values, exactly
    lines = ["# torch_optim.py: softmax regression, full batch, zero init; torch %s"
             % torch.__version__.split("+")[0],
             "data %d %d %d" % (N, D, K)]
    for i in range(N):
        lines.append("row %d %s" % (int(y[i]), " ".join("%.9g" % float(v) for v in x32[i])))
    for name, kind, lr, wd, betas, eps in CASES:
        W = torch.zeros(K, D, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(K, dtype=torch.float64, requires_grad=True)
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        opt = cls([W, b], lr=lr, betas=betas, eps=eps, weight_decay=wd)
        losses = []
        for _ in range(STEPS):
            opt.zero_grad()
            loss = F.cross_entropy(x @ W.T + b, y)
            losses.append(float(loss))
            loss.backward()
            opt.step()
        lines.append("case %s optimizer=%s lr=%g weight_decay=%g betas=%g,%g eps=%g"
                     % (name, kind, lr, wd, betas[0], betas[1], eps))
        lines.append("loss " + " ".join("%.12g" % v for v in losses))
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/ref/torch_optim.txt")
