"""Reference for tests/train/FinetuneTest.cpp: the fine-tuning loss.

Usage: train_finetune_bce.py IN.safetensors OUT.safetensors
IN holds `logits` [B, L], `labels` [B, L] (NaN = unknown) and `pos_weight` [L]. Computes, with
torch.nn.BCEWithLogitsLoss(pos_weight=..., reduction="none"), the mean over the known entries
and its gradient w.r.t. the logits, and writes `loss` (scalar) and `grad` [B, L] (float64), and
the same without pos_weight as `loss_plain`.
"""
import sys

import torch
from safetensors.torch import load_file, save_file


def masked(logits, labels, pos_weight):
    known = ~torch.isnan(labels)
    crit = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    per = crit(logits, torch.where(known, labels, torch.zeros_like(labels)))
    return per[known].mean()


def main():
    t = load_file(sys.argv[1])
    logits = t["logits"].double().requires_grad_(True)
    labels = t["labels"].double()
    pw = t["pos_weight"].double()
    loss = masked(logits, labels, pw)
    loss.backward()
    with torch.no_grad():
        plain = masked(logits, labels, None)
    save_file({"loss": loss.detach().reshape(1), "grad": logits.grad.contiguous(), "loss_plain": plain.reshape(1)},
              sys.argv[2])


if __name__ == "__main__":
    main()
