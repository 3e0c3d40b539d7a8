"""The target p(Y|H) whose gradient scores latents, and the batch layout it is computed on.

Targets (`modes.Target`):
- `answer-logprob` (default): Σ_j log p(y_j | prompt, y_<j) over the model's own greedy answer tokens,
  teacher-forced: one forward + one backward over prompt+answer.
- `answer-prob`: exp of that sum. `p` and `log p` give the *same ranking* of latents for one example
  (∂p = p · ∂log p: every latent's gradient is scaled by the same positive p), but different magnitudes
  across examples.
- `first-token-prob`: p(y_1 | prompt).
- `format-token-prob` (the authors' code): the probability of the *last* answer token, given everything before
  it. The answer is then the model's completion up to its format token (`format_target_ids`: the greedy token
  containing `[` of "Result = [[ label ]]"), so T is the probability of that token at the step that generated
  it: `softmax(logits[-1])[argmax]`.

Scored positions (`modes.ScoredPositions`): `prompt` (the prompt's tokens, the first left out unless
`include_bos`), or `all-at-target-step`: every column of the sequence the target's step saw (the prompt with
its first token, and the answer tokens before the last).

Layout: `[left pads | prompt | answer | right pads]`, so every row's prompt ends in the same column
`prompt_end` and its answer starts there; pads are masked, and position ids come from the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..errors import UsageError
from ..modes import ScoredPositions, check_mode

# Why a floor: with 1-2 rows the LM head's matmul takes another BLAS path (gemv) than a batch's, and batched vs
# single scores then drift to ~1.5e-4 relative instead of ~1e-5. 16 columns cost 16 × vocab floats per row.
MIN_LOGIT_COLUMNS = 16


@dataclass(frozen=True)
class ScoringInput:
    """One example to score: its prompt and the model's own greedy answer, as token ids."""

    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]


@dataclass(frozen=True)
class ScoringBatch:
    """A padded batch in the scoring layout.

    input_ids, attention_mask, position_ids: `[batch, seq]`.
    prompt_end: the column right after every row's last prompt token.
    prompt_start: `[batch]` column of each row's first prompt token.
    answer_len: `[batch]` number of answer tokens of each row.
    positions: which positions are scored (`modes.ScoredPositions`).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    prompt_end: int
    prompt_start: torch.Tensor
    answer_len: torch.Tensor
    positions: str = "prompt"

    @property
    def scored_end(self) -> int:
        """The column after the last one any row scores: `prompt_end`, or the whole width for
        `all-at-target-step` (a row's answer tokens before its last)."""
        return self.prompt_end if self.positions == "prompt" else self.input_ids.shape[1]

    @property
    def logit_columns(self) -> int:
        """How many trailing columns need logits: the answer-predicting ones (`prompt_end − 1` onwards, up to
        the last column), at least `MIN_LOGIT_COLUMNS`, at most all."""
        return min(self.input_ids.shape[1], max(int(self.answer_len.max()) + 1, MIN_LOGIT_COLUMNS))

    def model_inputs(self, device: torch.device | str, all_logits: bool = False) -> dict[str, Any]:
        """Keyword inputs of the model's forward.

        Unless `all_logits`, `logits_to_keep` limits the LM head to the last `logit_columns` columns, the
        only ones a target reads: the full `[batch, seq, vocab]` logits and their gradient otherwise take
        ~40% of a ~500-token SmolLM2 scoring pass's memory and ~25% of its time (docs/benchmarks.md, row 6).
        """
        inputs: dict[str, Any] = {"input_ids": self.input_ids.to(device),
                                  "attention_mask": self.attention_mask.to(device),
                                  "position_ids": self.position_ids.to(device)}
        if not all_logits:
            inputs["logits_to_keep"] = self.logit_columns
        return inputs

    def scored_positions(self, include_bos: bool) -> torch.Tensor:
        """`[batch, scored_end]` bool: the positions whose gradients are read; a row's last `True` column is its
        "last position" (where K's active latents are counted).

        prompt: the prompt's columns. The first prompt token (BOS, or the first chat token) is an attention
        sink with a residual norm ~100× the rest; it is left out unless `include_bos`.
        all-at-target-step: every column up to the one that predicts the last answer token, the first
        included (`include_bos` does not apply): the authors' mean over the whole sequence at the target's step.
        """
        cols = torch.arange(self.scored_end)[None, :]
        if self.positions == "prompt":
            return cols >= self.prompt_start[:, None] + (0 if include_bos else 1)
        return (cols >= self.prompt_start[:, None]) & (cols < self.prompt_end + self.answer_len[:, None] - 1)


def build_batch(examples: Sequence[ScoringInput], pad_id: int, positions: str = "prompt") -> ScoringBatch:
    """The examples in the scoring layout, scoring `positions` (`modes.ScoredPositions`)."""
    check_mode(positions, ScoredPositions, "scored_positions")
    if any(not ex.answer_ids for ex in examples):
        raise UsageError("an example has an empty answer: there is nothing to score (filter to answered examples)")
    prompt_end = max(len(ex.prompt_ids) for ex in examples)
    width = prompt_end + max(len(ex.answer_ids) for ex in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, ex in enumerate(examples):
        start = prompt_end - len(ex.prompt_ids)
        tokens = torch.tensor((*ex.prompt_ids, *ex.answer_ids), dtype=torch.long)
        input_ids[row, start:start + len(tokens)] = tokens
        mask[row, start:start + len(tokens)] = 1
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return ScoringBatch(input_ids, mask, position_ids, prompt_end,
                        torch.tensor([prompt_end - len(ex.prompt_ids) for ex in examples]),
                        torch.tensor([len(ex.answer_ids) for ex in examples]), positions)


def model_logits(lm: Any) -> Any:
    """Inside a trace of `lm`: the logits as the model returns them, `[batch, kept, vocab]`.

    Pitfall. Symptom: on Gemma 2 the target (and every score) is off by ~10% against plain PyTorch, on
    the other models exact. Cause: Gemma 2 soft-caps its logits (`final_logit_softcapping`: cap·tanh(z/cap))
    *after* `lm_head`, in the model's forward. Wrong: `lm.lm_head.output`. Right: `lm.output.logits`.
    """
    return lm.output.logits


def target_values(logits: torch.Tensor, batch: ScoringBatch, target: str) -> torch.Tensor:
    """`[batch]` target per row from `logits` `[batch, kept, vocab]` of the last `kept` columns (all `seq`, or
    `batch.logit_columns` from `model_inputs`). Rows are independent, so the gradient of their sum w.r.t. one
    row's activations is that row's own gradient."""
    n_answer = int(batch.answer_len.max())
    # logits at column t predict the token at t+1: answer token j sits at prompt_end + j
    start = batch.prompt_end - 1 - (batch.input_ids.shape[1] - logits.shape[1])
    if start < 0:
        raise ValueError(f"logits cover the last {logits.shape[1]} columns; the answer needs the last "
                         f"{batch.logit_columns}")
    pred = logits[:, start: start + n_answer].float().log_softmax(-1)
    tokens = batch.input_ids[:, batch.prompt_end: batch.prompt_end + n_answer].to(pred.device)
    logp = pred.gather(-1, tokens[..., None])[..., 0]                        # [batch, n_answer]
    valid = torch.arange(n_answer, device=pred.device)[None, :] < batch.answer_len[:, None].to(pred.device)
    if target == "first-token-prob":
        return logp[:, 0].exp()
    if target == "format-token-prob":
        last = (batch.answer_len - 1).to(pred.device)
        return logp.gather(-1, last[:, None])[:, 0].exp()
    total = (logp * valid).sum(-1)
    return total.exp() if target == "answer-prob" else total


def answer_token_ids(completion_ids: Sequence[int], tokenizer: object) -> tuple[int, ...]:
    """The answer part of a greedy completion: tokens before the first line break or end-of-sequence."""
    special = set(getattr(tokenizer, "all_special_ids", []))
    answer: list[int] = []
    for token in completion_ids:
        if token in special or "\n" in tokenizer.decode([token]):
            break
        answer.append(token)
    return tuple(answer)


def format_target_ids(completion_ids: Sequence[int], tokenizer: object) -> tuple[int, ...] | None:
    """The completion up to and including its format token (the authors' target step), or None if it has none.

    The authors' loop scores every step whose greedy token's text contains `[` and keeps the last one (each
    overwrites the same record), so this cuts after the *last* such token before the generation ended.
    """
    marks = [i for i, token in enumerate(completion_ids) if "[" in tokenizer.decode([token])]
    return tuple(completion_ids[: marks[-1] + 1]) if marks else None
