"""The report tokenizers of biud runs, giving biud's token ids.

WordPiece: biud's text::WordPiece gives the ids of HF's BertTokenizer(Fast) for a vocab.txt and
tokenizer_config.json; here the same pipeline is built from the `tokenizers` library (BertNormalizer,
BertPreTokenizer, WordPiece, the [CLS] $A [SEP] template). SentencePiece (text.tokenizer: spm):
the `sentencepiece` package, <s> ... </s> around the pieces as biud's SpmTokenizer.

Both truncate to `max_length` tokens (the closing special token kept) and pad to the longest text
of the batch, as biud's data::tokenizeBatch.
"""
import json
import os
from typing import List, Optional, Sequence, Tuple

import torch


def read_vocab(path: str) -> List[str]:
    """vocab.txt: one token per line (only the newline is stripped, as HF and biud do)."""
    with open(path, "r", encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise ValueError(f"WordPiece vocab `{path}` is empty: expected one token per line")
    return lines


class WordPieceTokenizer:
    def __init__(self, vocab: str, max_length: int = 128, lowercase: bool = True, strip_accents: Optional[bool] = None,
                 tokenize_chinese_chars: bool = True, max_input_chars_per_word: int = 100, unk_token: str = "[UNK]",
                 cls_token: str = "[CLS]", sep_token: str = "[SEP]", pad_token: str = "[PAD]",
                 mask_token: str = "[MASK]"):
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

        tokens = read_vocab(vocab)
        index = {}
        for i, t in enumerate(tokens):
            index[t] = i  # a duplicated line keeps its last id (HF, biud)
        self.vocab_path, self.max_length = vocab, max_length
        self.vocab_size = len(tokens)
        tok = Tokenizer(models.WordPiece(index, unk_token=unk_token, max_input_chars_per_word=max_input_chars_per_word))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=tokenize_chinese_chars,
                                                    strip_accents=strip_accents, lowercase=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        specials = [t for t in (unk_token, cls_token, sep_token, pad_token, mask_token) if t in index]
        tok.add_special_tokens(specials)
        self.special_ids = {k: index.get(t, -1) for k, t in
                            (("unk", unk_token), ("cls", cls_token), ("sep", sep_token), ("pad", pad_token),
                             ("mask", mask_token))}
        if self.special_ids["cls"] >= 0 and self.special_ids["sep"] >= 0:
            tok.post_processor = processors.TemplateProcessing(
                single=f"{cls_token} $A {sep_token}",
                special_tokens=[(cls_token, self.special_ids["cls"]), (sep_token, self.special_ids["sep"])])
        if max_length > 0:
            tok.enable_truncation(max_length)
        pad = max(self.special_ids["pad"], 0)
        tok.enable_padding(pad_id=pad, pad_token=pad_token)
        self._tok = tok

    @staticmethod
    def from_folder(vocab: str, max_length: int = 128, lowercase: bool = True) -> "WordPieceTokenizer":
        """vocab.txt with the options of a tokenizer_config.json beside it (which wins, as in biud),
        else `lowercase`."""
        cfg = os.path.join(os.path.dirname(os.path.abspath(vocab)), "tokenizer_config.json")
        if not os.path.exists(cfg):
            return WordPieceTokenizer(vocab, max_length, lowercase=lowercase)
        with open(cfg, encoding="utf-8") as f:
            j = json.load(f)

        def tok(key, default):
            v = j.get(key)
            if isinstance(v, dict):
                v = v.get("content")
            return v if isinstance(v, str) else default

        def flag(key, default):
            v = j.get(key)
            return default if v is None else bool(v)

        mic = j.get("max_input_chars_per_word")
        return WordPieceTokenizer(
            vocab, max_length, lowercase=flag("do_lower_case", True),
            strip_accents=None if j.get("strip_accents") is None else bool(j["strip_accents"]),
            tokenize_chinese_chars=flag("tokenize_chinese_chars", True),
            max_input_chars_per_word=mic if isinstance(mic, int) else 100,
            unk_token=tok("unk_token", "[UNK]"), cls_token=tok("cls_token", "[CLS]"), sep_token=tok("sep_token", "[SEP]"),
            pad_token=tok("pad_token", "[PAD]"), mask_token=tok("mask_token", "[MASK]"))

    def encode_ids(self, texts: Sequence[str]) -> List[List[int]]:
        """Ids of each text without padding."""
        self._tok.no_padding()
        try:
            return [e.ids for e in self._tok.encode_batch(list(texts))]
        finally:
            self._tok.enable_padding(pad_id=max(self.special_ids["pad"], 0))

    def __call__(self, texts: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        """ids [B, L] int64 and attention mask [B, L] int64 (1 = token), padded to the longest."""
        if isinstance(texts, str):
            texts = [texts]
        enc = self._tok.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
        return ids, mask


class SpmTokenizer:
    def __init__(self, model: str, max_length: int = 128):
        try:
            import sentencepiece
        except ImportError as e:  # pragma: no cover - optional dependency
            raise ImportError("this run tokenises with SentencePiece (text.tokenizer: spm): "
                              "pip install sentencepiece  (or pip install -e python/[spm])") from e
        self._sp = sentencepiece.SentencePieceProcessor(model_file=model)
        self.max_length = max_length
        self.vocab_size = self._sp.get_piece_size()
        self.special_ids = {"pad": self._sp.pad_id(), "unk": self._sp.unk_id(), "cls": self._sp.bos_id(),
                            "sep": self._sp.eos_id(), "mask": self._sp.piece_to_id("[MASK]")}

    def encode_ids(self, texts):
        out = []
        cls, sep = self.special_ids["cls"], self.special_ids["sep"]
        specials = cls >= 0 and sep >= 0
        for t in texts:
            ids = self._sp.encode(t)
            if self.max_length > 0:
                ids = ids[:self.max_length - (2 if specials else 0)]
            out.append(([cls] if specials else []) + ids + ([sep] if specials else []))
        return out

    def __call__(self, texts):
        if isinstance(texts, str):
            texts = [texts]
        rows = self.encode_ids(texts)
        n = max(len(r) for r in rows)
        pad = max(self.special_ids["pad"], 0)
        ids = torch.tensor([r + [pad] * (n - len(r)) for r in rows], dtype=torch.int64)
        mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows], dtype=torch.int64)
        return ids, mask
