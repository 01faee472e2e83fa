#!/usr/bin/env python3
"""HF reference for text::trainTokenizer's WordPiece output folder: load each DIR with
transformers' AutoTokenizer.from_pretrained (it reads vocab.txt and tokenizer_config.json, so
the class and do_lower_case come from the folder) and encode every line of INPUT.

Usage: text_hf_folder.py INPUT DIR [DIR...]
Prints one JSON object per DIR: {"dir": DIR, "class": tokenizer class name, "ids": [[...] per line]}.
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
from transformers import AutoTokenizer  # noqa: E402

path, dirs = sys.argv[1], sys.argv[2:]
with open(path, encoding="utf-8") as f:
    lines = f.read().split("\n")
if lines and lines[-1] == "":
    lines.pop()
for d in dirs:
    tok = AutoTokenizer.from_pretrained(d, use_fast=False)
    print(json.dumps({"dir": d, "class": type(tok).__name__, "ids": [tok(line)["input_ids"] for line in lines]}))
