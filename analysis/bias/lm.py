"""The lm-eval model wrapper: lm-eval's `HFLM` when it can be imported, else `TransformersLM`.

`HFLM` (lm_eval.models.huggingface) imports `accelerate`; where that package is absent,
`TransformersLM` is an `lm_eval.api.model.TemplateLM` over the same loaded transformers model
with HFLM's semantics: an empty context is the end-of-text token; a request's tokens are cut to
the last `max_length + 1` from the left and its continuation scored on the last positions
(log-softmax in float32, summed; `is_greedy` = every continuation token is the argmax); greedy
generation stops at the first `until` string. lm-eval still builds every request, applies the
task definitions and computes the metrics.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.api.model import TemplateLM
from tqdm import tqdm

log = logging.getLogger(__name__)


class TransformersLM(TemplateLM):
    """A loaded `transformers` causal LM (and its fast tokenizer) for lm-eval."""

    def __init__(
        self, model: Any, tokenizer: Any, *, batch_size: int = 32, max_length: int = 2048
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length

    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def tokenizer_name(self) -> str:
        return "pythia-suite"

    def tok_encode(
        self, string: str, add_special_tokens: bool | None = None, **kwargs: Any
    ) -> list[int]:
        return list(self.tokenizer.encode(string, add_special_tokens=False))

    def tok_decode(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens))

    @torch.no_grad()
    def _score(self, batch: list[tuple[list[int], int]]) -> list[tuple[float, bool]]:
        """(tokens, continuation length n) -> (sum of log p of the last n tokens given the
        ones before, is_greedy)."""
        width = max(len(whole) - 1 for whole, _ in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (whole, _) in enumerate(batch):
            ids[i, : len(whole) - 1] = torch.tensor(whole[:-1])
            mask[i, : len(whole) - 1] = 1
        logits = self.model(input_ids=ids, attention_mask=mask).logits.float()  # [b, T, V]
        logp = F.log_softmax(logits, dim=-1)
        out = []
        for i, (whole, n) in enumerate(batch):
            end = len(whole) - 1
            rows = logp[i, end - n : end]  # [n, V]: predictions of the continuation
            target = torch.tensor(whole[-n:])
            out.append(
                (
                    float(rows.gather(1, target[:, None]).sum()),
                    bool((rows.argmax(-1) == target).all()),
                )
            )
        return out

    def _loglikelihood_tokens(
        self, requests: list[Any], disable_tqdm: bool = False, **kwargs: Any
    ) -> list[tuple[float, bool]]:
        results: list[tuple[float, bool]] = []
        for start in tqdm(
            range(0, len(requests), self.batch_size),
            disable=disable_tqdm or None,
            desc="loglikelihood",
        ):
            chunk = requests[start : start + self.batch_size]
            batch = [
                ((list(context) + list(continuation))[-(self.max_length + 1) :], len(continuation))
                for _, context, continuation in chunk
            ]
            results += self._score(batch)
        return results

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        out = []
        for (text,) in tqdm(
            [r.args for r in requests], disable=disable_tqdm or None, desc="loglikelihood_rolling"
        ):
            windows = [
                make_disjoint_window(w)
                for w in get_rolling_token_windows(
                    token_list=self.tok_encode(text),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                )
            ]
            scores = self._loglikelihood_tokens(
                [(None, c, t) for c, t in windows], disable_tqdm=True
            )
            out.append(sum(s for s, _ in scores))
        return out

    @torch.no_grad()
    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        out: list[str] = []
        args = [r.args for r in requests]
        for start in tqdm(
            range(0, len(args), self.batch_size),
            disable=disable_tqdm or None,
            desc="generate_until",
        ):
            chunk = args[start : start + self.batch_size]
            kwargs = dict(chunk[0][1])
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            new = int(kwargs.get("max_gen_toks", 256))
            encoded = [self.tok_encode(c)[-(self.max_length - new) :] for c, _ in chunk]
            width = max(len(e) for e in encoded)
            ids = torch.full((len(chunk), width), self.eot_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, e in enumerate(encoded):  # left padding
                ids[i, width - len(e) :] = torch.tensor(e)
                mask[i, width - len(e) :] = 1
            gen = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new,
                do_sample=False,
                pad_token_id=self.eot_token_id,
                eos_token_id=self.eot_token_id,
            )
            for i in range(len(chunk)):
                tokens = gen[i, width:].tolist()
                if self.eot_token_id in tokens:
                    tokens = tokens[: tokens.index(self.eot_token_id)]
                text = self.tok_decode(tokens)
                for stop in until:
                    text = text.split(stop)[0]
                out.append(text)
        return out


def lm_for(model: Any, tokenizer: Any, *, batch_size: int, max_length: int) -> Any:
    """lm-eval's HFLM over the loaded model if it imports, else `TransformersLM`."""
    try:
        from lm_eval.models.huggingface import HFLM
    except ImportError as exc:
        log.info("lm-eval HFLM unavailable (%s); using TransformersLM", exc)
        return TransformersLM(model, tokenizer, batch_size=batch_size, max_length=max_length)
    return HFLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=batch_size,
        max_length=max_length,
        device="cpu",
    )
