"""A small causal transformer (GPT-style, tied embeddings) with a preallocated KV cache.

`forward` scores whole sequences (training, log-probs); `generate` samples with the
KV cache: the prompt is run once, then each new token attends to cached keys and
values, so a step costs O(T) instead of recomputing the O(T²) prefix
(`use_cache=False` recomputes it, for the benchmark); finished rows leave the decode batch.
Prompts may be left-padded: `attention_mask` hides pad keys and positions count only real
tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainable.config import TinyModelConfig


class Attention(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x, mask, cache=None, start: int = 0):
        B, T, C = x.shape
        q, k, v = (
            t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in self.qkv(x).split(C, dim=2)
        )
        if cache is not None:  # write this chunk's keys/values, attend to everything so far
            k_cache, v_cache = cache
            k_cache[:, :, start : start + T] = k
            v_cache[:, :, start : start + T] = v
            k, v = k_cache[:, :, : start + T], v_cache[:, :, : start + T]
        if T == 1:  # decode step: plain attention beats the fused CPU kernel for one query
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
            y = torch.softmax(att.masked_fill(~mask, float("-inf")), dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, n_head)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask, cache=None, start: int = 0):
        x = x + self.attn(self.ln1(x), mask, cache, start)
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, cfg: TinyModelConfig, vocab_size: int, max_len: int):
        super().__init__()
        self.cfg, self.max_len = cfg, max_len
        self.tok_emb = nn.Embedding(vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(max_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_head) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def _hidden(self, idx, positions, mask, caches=None, start: int = 0):
        x = self.tok_emb(idx) + self.pos_emb(positions)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, caches[i] if caches is not None else None, start)
        return self.ln_f(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.tok_emb.weight.T  # tied embeddings

    def forward(self, idx: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """Hidden states [B, T, d] of whole sequences (call `logits` on the slice you need)."""
        B, T = idx.shape
        if self.max_len < T:
            raise ValueError(f"sequence longer than the model's max_len: {T=} {self.max_len=}")
        if attention_mask is None:
            attention_mask = torch.ones_like(idx)
        return self._hidden(idx, _positions(attention_mask), _full_mask(attention_mask))

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        prompt_mask: torch.Tensor,
        max_new_tokens: int,
        temperature: float,
        generator: torch.Generator,
        eos_id: int,
        pad_id: int,
        use_cache: bool = True,
        compact: bool = True,
    ) -> torch.Tensor:
        """Sample [B, ≤max_new_tokens] tokens; after a row's EOS the rest is `pad_id`.
        `temperature` 0 is greedy (the uniforms are still drawn, from `generator`).

        `compact`: finished rows leave the batch (with their cache rows) each time an eighth of
        it has finished, so decode steps cost only the running rows: most rows end well before
        the longest (compacting more often copies more than it saves). The tokens are those of
        the full batch: a row's numbers are its own (attention, layer norm and sampling are per
        row, and MKL's matrix products give a row the same bits in any batch of ≥ `MIN_BATCH`
        rows), and every step still draws one uniform per row of the full batch.
        """
        B, P = prompt.shape
        end = P + max_new_tokens
        if self.max_len < end:
            raise ValueError(f"prompt + response exceed max_len: {P=} {max_new_tokens=} {self.max_len=}")
        seq = torch.full((B, end), pad_id, dtype=torch.long)
        seq[:, :P] = prompt
        mask = torch.ones_like(seq)
        mask[:, :P] = prompt_mask
        pos = _positions(mask)  # known in advance: every generated token is a real token
        allowed = mask.bool()[:, None, None, :]  # decode-step attention mask, sliced per step
        caches = self._new_cache(B, end) if use_cache else None
        hidden = self._hidden(prompt, _positions(prompt_mask), _full_mask(prompt_mask), caches)
        rows = None  # the rows of `seq` in the batch, once it has been compacted (None: all)
        running = torch.ones(B, dtype=torch.bool)  # per batch row
        for t in range(P, end):
            u = torch.rand(B, 1, generator=generator)
            logits = self.logits(hidden[:, -1])
            if temperature == 0:  # greedy (validation)
                token = logits.argmax(-1)
            else:
                token = _inverse_cdf(logits, temperature, u if rows is None else u[rows])
            token = torch.where(running, token, pad_id)
            if rows is None:
                seq[:, t] = token
            else:
                seq[rows, t] = token
            running &= token != eos_id
            n_running = int(running.sum())
            if n_running == 0 or t + 1 == end:
                return seq[:, P : t + 1]
            if compact and MIN_BATCH <= n_running <= len(running) * 7 // 8:
                keep = running.nonzero().squeeze(1)
                rows = keep if rows is None else rows[keep]
                running, pos, mask, allowed = running[keep], pos[keep], mask[keep], allowed[keep]
                if use_cache:
                    caches = [(k[keep], v[keep]) for k, v in caches]
                token = token[keep]
            if use_cache:
                hidden = self._hidden(token[:, None], pos[:, t : t + 1], allowed[..., : t + 1], caches, t)
            else:
                batch = seq if rows is None else seq[rows]
                hidden = self._hidden(batch[:, : t + 1], pos[:, : t + 1], _full_mask(mask[:, : t + 1]))
        return seq[:, P:]

    def _new_cache(self, batch: int, length: int):
        head_dim = self.cfg.d_model // self.cfg.n_head
        shape = (batch, self.cfg.n_head, length, head_dim)
        return [(torch.empty(shape), torch.empty(shape)) for _ in self.blocks]


#: Fewest rows a compacted decode batch keeps: MKL's matrix products take another path for
#: 1–3 rows, whose results differ from the same rows' in a larger batch in the last bit.
MIN_BATCH = 4


def sample(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """One token per row from softmax(logits / temperature), by inverse CDF: one uniform
    per row (torch.multinomial draws one exponential per vocabulary entry, 5× slower)."""
    return _inverse_cdf(logits, temperature, torch.rand(logits.shape[0], 1, generator=generator))


def _inverse_cdf(logits: torch.Tensor, temperature: float, u: torch.Tensor) -> torch.Tensor:
    scaled = logits.float() if temperature == 1.0 else logits.float() / temperature  # x / 1 == x
    cdf = torch.softmax(scaled, dim=-1).cumsum(-1)
    return torch.searchsorted(cdf, u * cdf[:, -1:]).squeeze(1).clamp(max=logits.shape[-1] - 1)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def _full_mask(mask: torch.Tensor) -> torch.Tensor:
    """[B, 1, T, T] bool: causal, pad keys hidden; each position always sees itself
    (so rows of left-pad queries are not empty, which would give NaN)."""
    T = mask.shape[-1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = causal[None] & mask.bool()[:, None, :]
    allowed |= torch.eye(T, dtype=torch.bool)[None]
    return allowed[:, None]
