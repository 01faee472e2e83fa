"""Reader of biud's preprocessed CT cache (biud-preprocess --out DIR), the twin of
image::CacheReader (include/biud/image/CtCache.h, src/image/CtCache.cpp).

A cache folder holds index.json ({"format": "biud-ct-cache", "version": 1, "hash", "preprocess",
"items": [{id, shard, offset, bytes, shape [x, y, z], spacing, origin, dtype, quant, crc32}]})
and shard files of records (a 256-byte header, the id, zero padding to 64 bytes, the voxels).
Voxels are x-fastest int16 (value = stored / quant, computed in float32 as biud does) or
float16. cache[id] is a float32 tensor [1, z, y, x]: what biud's loader feeds the CT encoder at
evaluation (no crop). Each record's crc32 is checked the first time it is read.
"""
import json
import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np
import torch

CACHE_VERSION = 1
MAGIC = b"BIUDCT\x00\x01"
# RecordHeader (CtCache.h): magic, version, headerBytes, dtype, orientation[3], shape[3] int32,
# spacing[3], origin[3], direction[9] double, quant float, crc32, hash[16], idBytes, reserved0,
# dataOffset, dataBytes (little-endian), reserved to 256 bytes.
_HEADER = struct.Struct("<8sIIB3s3i3d3d9dfI16sIIQQ")
HEADER_BYTES = 256


@dataclass(frozen=True)
class CacheEntry:
    id: str
    shard: str
    offset: int          # first voxel byte in the shard
    bytes: int
    shape: Tuple[int, int, int]      # x, y, z
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]
    dtype: str           # int16 | float16
    quant: float
    crc32: int


class CacheError(Exception):
    pass


class CtCache(Mapping):
    """A biud CT cache folder: a read-only mapping id -> float32 tensor [1, z, y, x]."""

    def __init__(self, path: str, expected_hash: Optional[str] = None, verify: str = "once"):
        if verify not in ("off", "once", "always"):
            raise ValueError("verify must be off, once or always")
        self.path, self.verify_mode = path, verify
        index = os.path.join(path, "index.json")
        if not os.path.exists(index):
            raise CacheError(f"cache `{path}`: no index.json (build it with biud-preprocess --out {path})")
        try:
            with open(index, encoding="utf-8") as f:
                j = json.load(f)
            if j.get("format") != "biud-ct-cache":
                raise CacheError(f"cache index `{index}`: not a biud CT cache")
            if j.get("version") != CACHE_VERSION:
                raise CacheError(f"cache `{path}`: format version {j.get('version')} (this reader reads "
                                 f"{CACHE_VERSION}); rebuild it with biud-preprocess")
            self.hash = j["hash"]
            self.preprocess = j.get("preprocess", "")
            self.orientation = j.get("orientation", "LPS")
            entries = []
            for it in j["items"]:
                e = CacheEntry(it["id"], it["shard"], int(it["offset"]), int(it["bytes"]), tuple(it["shape"]),
                               tuple(it["spacing"]), tuple(it["origin"]), it["dtype"], float(np.float32(it["quant"])),
                               int(it["crc32"]))
                if e.dtype not in ("int16", "float16"):
                    raise CacheError(f"cache index `{index}`: item `{e.id}` has unknown dtype `{e.dtype}`")
                n = e.shape[0] * e.shape[1] * e.shape[2]
                if min(e.shape) <= 0 or not (e.quant > 0) or e.bytes != 2 * n:
                    raise CacheError(f"cache index `{index}`: item `{e.id}` has shape {e.shape}, {e.bytes} bytes "
                                     f"and quantisation {e.quant} (corrupt index; rerun biud-preprocess)")
                entries.append(e)
        except (KeyError, TypeError, ValueError) as ex:
            raise CacheError(f"cache index `{index}` is corrupt: {ex}") from ex
        self._entries: Dict[str, CacheEntry] = {}
        for e in entries:
            if e.id in self._entries:
                raise CacheError(f"cache index `{index}` lists item `{e.id}` twice (corrupt index; rerun biud-preprocess)")
            self._entries[e.id] = e
        if expected_hash is not None and expected_hash != self.hash:
            raise CacheError(f"cache `{path}` was built with other preprocessing parameters ({self.preprocess}; hash "
                             f"{self.hash}) than expected (hash {expected_hash}); rebuild it with biud-preprocess "
                             "and the run's config")
        self._maps: Dict[str, mmap.mmap] = {}
        self._verified = set()

    # --- Mapping -----------------------------------------------------------------------------
    def __getitem__(self, id: str) -> torch.Tensor:
        return torch.from_numpy(self.read(id))

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def ids(self) -> List[str]:
        return list(self._entries)

    def entry(self, id: str) -> CacheEntry:
        try:
            return self._entries[id]
        except KeyError:
            raise KeyError(f"cache `{self.path}` has no item `{id}`") from None

    def failures(self) -> Dict[str, str]:
        """Items biud-preprocess could not read (failures.jsonl): id -> error."""
        out = {}
        p = os.path.join(self.path, "failures.jsonl")
        if os.path.exists(p):
            with open(p, encoding="utf-8") as f:
                for line in f:
                    try:
                        j = json.loads(line)
                        out[str(j.get("id"))] = str(j.get("error", ""))
                    except ValueError:
                        pass
        return out

    # --- reading -----------------------------------------------------------------------------
    def _map(self, shard: str) -> mmap.mmap:
        m = self._maps.get(shard)
        if m is None:
            with open(os.path.join(self.path, shard), "rb") as f:
                m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            self._maps[shard] = m
        return m

    def raw(self, id: str) -> memoryview:
        """The stored voxel bytes of an item (checked against the shard's size)."""
        e = self.entry(id)
        m = self._map(e.shard)
        if e.offset + e.bytes > len(m):
            raise CacheError(f"cache `{self.path}`: item `{id}` lies beyond the end of shard `{e.shard}` "
                             "(truncated shard; rerun biud-preprocess)")
        return memoryview(m)[e.offset:e.offset + e.bytes]

    def verify(self, id: str) -> None:
        """Check the item's crc32 against its voxels (CacheError naming the item when it differs)."""
        e = self.entry(id)
        crc = zlib.crc32(self.raw(id)) & 0xFFFFFFFF
        if crc != e.crc32:
            raise CacheError(f"cache `{self.path}`: item `{id}` in shard `{e.shard}` is damaged (crc32 {crc:08x}, "
                             f"expected {e.crc32:08x}); rebuild the cache with biud-preprocess")
        self._verified.add(id)

    def read(self, id: str) -> np.ndarray:
        """float32 array [1, z, y, x], decoded as biud's CacheReader::decode."""
        e = self.entry(id)
        if self.verify_mode == "always" or (self.verify_mode == "once" and id not in self._verified):
            self.verify(id)
        buf = self.raw(id)
        if e.dtype == "int16":
            inv = np.float32(1.0) / np.float32(e.quant)
            v = np.frombuffer(buf, dtype="<i2").astype(np.float32) * inv
        else:
            v = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        x, y, z = e.shape
        return v.reshape(1, z, y, x)

    def header(self, id: str) -> dict:
        """The record header in the shard (direction cosines, orientation, hash ...)."""
        e = self.entry(id)
        m = self._map(e.shard)
        id_bytes = len(e.id.encode("utf-8"))
        start = e.offset - ((HEADER_BYTES + id_bytes + 63) // 64 * 64)
        h = _HEADER.unpack_from(m, start)
        if h[0] != MAGIC:
            raise CacheError(f"cache `{self.path}`: no record header before item `{id}` in `{e.shard}`")
        return {"version": h[1], "dtype": {1: "int16", 2: "float16"}.get(h[3]), "orientation": h[4].decode(),
                "shape": h[5:8], "spacing": h[8:11], "origin": h[11:14], "direction": h[14:23], "quant": h[23],
                "crc32": h[24], "hash": h[25].decode(), "id_bytes": h[26], "data_offset": h[28], "data_bytes": h[29]}

    def close(self):
        for m in self._maps.values():
            m.close()
        self._maps.clear()

    def __repr__(self):
        return f"CtCache({self.path!r}, {len(self)} items, hash {self.hash})"


def read_cache(path: str, expected_hash: Optional[str] = None, verify: str = "once") -> CtCache:
    """Open a biud CT cache folder: cache[id] -> float32 tensor [1, z, y, x]."""
    return CtCache(path, expected_hash, verify)
