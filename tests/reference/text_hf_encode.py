#!/usr/bin/env python3
"""HF reference for biud-tokenizer encode: encode each line of INPUT with transformers' BertTokenizer
built from VOCAB (a vocab.txt, uncased) and print one JSON object per line with input_ids and
attention_mask, using the same max_length/padding as the app.

Usage: text_hf_encode.py VOCAB INPUT MAX_LENGTH   (MAX_LENGTH 0 = no truncation/padding)
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
from transformers import BertTokenizer  # noqa: E402
from transformers.models.bert.tokenization_bert_legacy import load_vocab  # noqa: E402

vocab, path, max_length = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = BertTokenizer(vocab=dict(load_vocab(vocab)), do_lower_case=True)
with open(path, encoding="utf-8") as f:
    lines = f.read().split("\n")
if lines and lines[-1] == "":
    lines.pop()
for line in lines:
    kw = dict(max_length=max_length, truncation=True, padding="max_length") if max_length > 0 else {}
    enc = tok(line, **kw)
    print(json.dumps({"ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}))
