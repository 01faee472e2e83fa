"""biud in PyTorch: load a biud run with one call and reproduce biud's embeddings.

    import biud
    run = biud.load_run("runs/quickstart/biud")                       # newest checkpoint, EMA weights
    ct = run.embed_ct(biud.read_cache("runs/quickstart/cache")["ct_000000"])
    text = run.embed_text(["No pleural effusion."])

Pure PyTorch (no compiled part). The networks (biud.models) mirror include/biud/models/*.h with
the same parameter names; docs/python.md says what equals what and within which tolerance.
"""
from .cache import CacheEntry, CacheError, CtCache, read_cache
from .checkpoint import latest_checkpoint, locate
from .run import FORMAT_VERSION, Run, RunError, load_run
from .tokenizer import SpmTokenizer, WordPieceTokenizer

__version__ = "0.1.0"
__all__ = ["load_run", "Run", "RunError", "read_cache", "CtCache", "CacheEntry", "CacheError", "latest_checkpoint",
           "locate", "WordPieceTokenizer", "SpmTokenizer", "FORMAT_VERSION"]
