"""Batched greedy decoding with a KV cache through `transformers` (`model.generate`).

Prompts are left-padded into batches of similar length; each sequence stops at its first token
that contains a newline, at `<|endoftext|>`, or after `max_new_tokens`. Prompts start with
`<|endoftext|>` (as a document does in training) unless `prefix_eod=False`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from suite_core import DataError


@dataclass(frozen=True, kw_only=True)
class DecodeConfig:
    max_new_tokens: int = 16
    batch_size: int = 128
    prefix_eod: bool = True


def stop_ids(tokenizer: Any) -> list[int]:
    """Token ids that end a completion: every token whose text holds a newline, and EOD."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    ids = [i for i in vocab.values() if "\n" in tokenizer.decode([i], skip_special_tokens=False)]
    eod = tokenizer.token_to_id("<|endoftext|>")
    return sorted(set(ids) | ({eod} if eod is not None else set()))


def encode_prompts(tokenizer: Any, prompts: Sequence[str], *, prefix_eod: bool) -> list[list[int]]:
    eod = tokenizer.token_to_id("<|endoftext|>")
    head = [eod] if prefix_eod and eod is not None else []
    return [head + tokenizer.encode(p, add_special_tokens=False).ids for p in prompts]


def greedy_complete(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    config: DecodeConfig = DecodeConfig(),
    *,
    desc: str = "decode",
) -> list[str]:
    """Greedy completions of `prompts` (text after the prompt, cut at the first newline)."""
    import torch

    encoded = encode_prompts(tokenizer, prompts, prefix_eod=config.prefix_eod)
    limit = int(getattr(model.config, "max_position_embeddings", 0) or 0)
    longest = max((len(e) for e in encoded), default=0)
    if limit and longest + config.max_new_tokens > limit:
        raise DataError(
            f"prompts: {longest} tokens + {config.max_new_tokens} new tokens exceed "
            f"the model's context of {limit} (use fewer shots)"
        )
    stops = stop_ids(tokenizer)
    pad = tokenizer.token_to_id("<|padding|>")
    pad = pad if pad is not None else stops[-1]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out: list[str] = [""] * len(encoded)
    bar = tqdm(total=len(encoded), desc=desc, unit="prompt", disable=None)
    with bar, torch.inference_mode():
        for b in range(0, len(order), config.batch_size):
            idx = order[b : b + config.batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[r, width - len(encoded[i]) :] = 1
            gen = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=config.max_new_tokens,
                eos_token_id=stops,
                pad_token_id=pad,
                use_cache=True,
            )
            for r, i in enumerate(idx):
                new = [t for t in gen[r, width:].tolist()]
                cut = next((n for n, t in enumerate(new) if t in stops), len(new))
                text = tokenizer.decode(new[: cut + 1], skip_special_tokens=True)
                out[i] = text.split("\n", 1)[0]
            bar.update(len(idx))
    return out
