"""The memorization score (Biderman et al. 2023), computed exactly by two paths per row.

Prompt = the row's first `k` tokens, target = the next `target` tokens; the score is the
fraction of target positions that greedy decoding from the prompt reproduces.

1. One teacher-forced pass over the whole row (inputs `row[:-1]`, labels `row[1:]`) gives, for
   every position, the argmax and the log-probability of the label: the row's mean token
   log-likelihood and token accuracy, and the first target position where the argmax differs
   from the target. Greedy decoding agrees with the target up to that position, so a row that
   never differs is memorized (score 1) and needs nothing more.
2. The other rows are decoded greedily with a KV cache, continuing only from the earliest
   first mismatch of the batch (the shared prefix is prefilled once), exactly as
   `generate(do_sample=False)` would from the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from suite_core import DataError

LOGIT_CHUNK = 1 << 22  # logits computed for at most this many (position x vocab) cells at once


@dataclass(frozen=True, kw_only=True)
class ScoreConfig:
    k: int = 32  # prompt tokens
    target: int = 32  # target tokens

    def check(self, row_tokens: int, where: str = "rows") -> None:
        """ValueError unless k >= 1, target >= 1 and k + target fit in a row of this length."""
        if self.k < 1 or self.target < 1:
            raise DataError(f"--k/--target: must be positive, got k={self.k}, target={self.target}")
        if self.k + self.target > row_tokens:
            raise DataError(
                f"{where}: field 'seq_length': k + target = "
                f"{self.k + self.target} is longer than the rows "
                f"({row_tokens} tokens)"
            )


@dataclass(frozen=True, kw_only=True)
class RowScores:
    scores: np.ndarray  # float32 [N]: fraction of target tokens greedy decoding reproduces
    loglik: np.ndarray  # float32 [N]: mean log p(row[i+1] | row[:i+1]) over the row
    token_acc: np.ndarray  # float32 [N]: fraction of positions whose argmax is the label
    decoded: int  # rows that needed the greedy path


@torch.no_grad()
def teacher_forced(model: Any, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax [N, L] and log p(label) [N, L] of a teacher-forced pass over rows [N, L + 1]."""
    inputs, labels = tokens[:, :-1], tokens[:, 1:]
    hidden = model.base_model(input_ids=inputs).last_hidden_state  # [N, L, h]
    head = model.get_output_embeddings()
    n, length = inputs.shape
    vocab = head.weight.shape[0]
    per = max(1, LOGIT_CHUNK // max(1, length * vocab))  # rows per chunk
    argmax = torch.empty((n, length), dtype=torch.long)
    logp = torch.empty((n, length), dtype=torch.float32)
    for lo in range(0, n, per):
        logits = head(hidden[lo : lo + per]).float()  # [n', L, V]
        argmax[lo : lo + per] = logits.argmax(-1)
        label = labels[lo : lo + per].unsqueeze(-1)
        logp[lo : lo + per] = logits.gather(-1, label).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return argmax, logp


@torch.no_grad()
def greedy_continue(model: torch.nn.Module, prefix: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy tokens [N, steps] after `prefix` [N, P], decoded with the model's KV cache."""
    out = model(input_ids=prefix, use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    nxt = out.logits[:, -1].argmax(-1)
    tokens = [nxt]
    for _ in range(steps - 1):
        out = model(input_ids=nxt[:, None], past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1)
        tokens.append(nxt)
    return torch.stack(tokens, dim=1)


def first_mismatch(argmax: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Index of the first position where argmax differs from target; len(target) if none."""
    diff = np.asarray(argmax) != np.asarray(target)
    return np.where(diff.any(axis=1), diff.argmax(axis=1), diff.shape[1])


def score_rows(
    model: torch.nn.Module, rows: np.ndarray, config: ScoreConfig = ScoreConfig()
) -> RowScores:
    """Score rows [N, L + 1] (token ids) with `model` (a causal LM in eval mode)."""
    config.check(rows.shape[1])
    k, t = config.k, config.target
    tokens = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64))
    argmax, logp = teacher_forced(model, tokens)
    target = tokens[:, k : k + t]
    # position i of the pass predicts token i + 1: target j is predicted at k - 1 + j
    pred = argmax[:, k - 1 : k - 1 + t]
    first = first_mismatch(pred.numpy(), target.numpy())  # [N]
    scores = np.ones(len(rows), dtype=np.float32)
    todo = np.flatnonzero(first < t)
    if todo.size:
        start = int(first[todo].min())  # greedy equals the target before every row's mismatch
        prefix = tokens[todo, : k + start]
        gen = greedy_continue(model, prefix, t - start)  # [n, t - start]
        hits = (gen == target[todo, start:]).sum(dim=1).numpy() + start
        scores[todo] = hits / t
    labels_ok = (argmax == tokens[:, 1:]).float().mean(dim=1).numpy()
    return RowScores(
        scores=scores,
        loglik=logp.mean(dim=1).numpy().astype(np.float32),
        token_acc=labels_ok.astype(np.float32),
        decoded=int(todo.size),
    )


def score_windows(
    model: torch.nn.Module, windows: np.ndarray, k: int, target: int
) -> tuple[np.ndarray, np.ndarray]:
    """Score [N] and mean target-token log-likelihood [N] of windows [N, k + target]."""
    if len(windows) == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
    cfg = ScoreConfig(k=k, target=target)
    res = score_rows(model, windows, cfg)
    tokens = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.int64))
    _, logp = teacher_forced(model, tokens)
    return res.scores, logp[:, k - 1 : k - 1 + target].mean(dim=1).numpy().astype(np.float32)
