"""Independent plain-PyTorch implementations of GradSAE scoring and latent edits, for the tests.

Written without nnsight or any gradsae_nn scoring/editing code: forward hooks on the HF module, one
unpadded example at a time, `torch.autograd.grad`, and HF `generate`. The SAE is used only through its
raw weights (`W_enc`, `b_enc`, `W_dec`, `b_dec`, `threshold`), so an error in SAELens-facing code of the
package would not cancel out here.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


def sae_encode(sae, x):
    pre = (x - sae.b_dec * float(sae.cfg.apply_b_dec_to_input)) @ sae.W_enc + sae.b_enc
    acts = torch.relu(pre)
    if sae.cfg.architecture() == "jumprelu":
        acts = acts * (pre > sae.threshold)
    return acts


def sae_decode(sae, h):
    return h @ sae.W_dec + sae.b_dec


class ReferenceScores(NamedTuple):
    """gradsae, activation: `[d_sae]`; target: T; logit_scale: max |logit| over the answer-predicting columns
    (the scale the target's rounding error is relative to, see `tolerance.log_prob_tol`)."""

    gradsae: torch.Tensor
    activation: torch.Tensor
    target: float
    logit_scale: float
    attribution: torch.Tensor | None = None


def reference_scores(hf_model, sae, layer, prompt_ids, answer_ids, target="answer-logprob", include_bos=False,
                     splice="lossless", logit_shift=0):
    """GradSAE and activation scores of one example, by hooks + autograd.

    splice="reconstruct" and logit_shift≠0 are deliberate bugs (a missing error term; the answer read off-by-
    `logit_shift` columns), used to show that the tests' tolerances catch them.
    """
    store = {}

    def hook(_module, _inputs, output):
        x = output[0] if isinstance(output, tuple) else output
        h = sae_encode(sae, x).detach().requires_grad_(True)
        recon = sae_decode(sae, h)
        store["h"] = h
        return recon if splice == "reconstruct" else x + (recon - recon.detach())

    handle = hf_model.model.layers[layer].register_forward_hook(hook)
    try:
        ids = torch.tensor([list(prompt_ids) + list(answer_ids)], device=hf_model.device)
        logits = hf_model(ids).logits[0]
    finally:
        handle.remove()
    p = len(prompt_ids)
    columns = [p - 1 + j + logit_shift for j in range(len(answer_ids))]
    logp = torch.stack([logits[c].log_softmax(-1)[tok] for c, tok in zip(columns, answer_ids)])
    value = {"answer-logprob": logp.sum(), "answer-prob": logp.sum().exp(),
             "first-token-prob": logp[0].exp(), "format-token-prob": logp[-1].exp()}[target]
    (grad,) = torch.autograd.grad(value, store["h"])
    start = 0 if include_bos else 1
    h = store["h"][0, start:p].detach()
    g = grad[0, start:p]
    return ReferenceScores(torch.relu(g * h).mean(0), h.mean(0), float(value.detach()),
                           float(logits[columns].detach().abs().max()), (g * h).sum(0))


def reference_ablated_target(hf_model, sae, layer, prompt_ids, answer_ids, latent, include_bos=False):
    """The answer log-prob with `latent` zeroed (its decoder row times its activation removed) at the prompt
    positions, the first left out unless `include_bos`: one example, a forward hook, no batching."""
    start, p = (0 if include_bos else 1), len(prompt_ids)

    def hook(_module, _inputs, output):
        x = output[0] if isinstance(output, tuple) else output
        x = x.clone()
        x[:, start:p] = reference_sliced_edit(sae, x[:, start:p], (latent,), ())
        return x

    handle = hf_model.model.layers[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = hf_model(torch.tensor([list(prompt_ids) + list(answer_ids)], device=hf_model.device)).logits[0]
    finally:
        handle.remove()
    return float(sum(logits[p - 1 + j].log_softmax(-1)[tok] for j, tok in enumerate(answer_ids)))


def reference_edit(sae, x, zero, inject):
    """`decode(edit(encode(x))) + (x − decode(encode(x)))` with latents `zero` zeroed and `inject` set."""
    h = sae_encode(sae, x)
    edited = h.clone()
    for latent in zero:
        edited[..., latent] = 0.0
    for latent, value in inject:
        edited[..., latent] = value
    return sae_decode(sae, edited) + (x - sae_decode(sae, h))


def reference_sliced_edit(sae, x, zero, inject):
    """The same edit from only the edited latents' rows: `x − Σ f_c(x) W_dec[c] + Σ v_j W_dec[j]`."""
    out = x.clone()
    for latent in dict.fromkeys([*zero, *(i for i, _ in inject)]):
        pre = (x - sae.b_dec * float(sae.cfg.apply_b_dec_to_input)) @ sae.W_enc[:, latent] + sae.b_enc[latent]
        f = torch.relu(pre)
        if sae.cfg.architecture() == "jumprelu":
            f = f * (pre > sae.threshold[latent])
        out = out - f[..., None] * sae.W_dec[latent]
    for latent, value in inject:
        out = out + value * sae.W_dec[latent]
    return out


def reference_generate(hf_model, tokenizer, sae, layer, prompt_ids, zero=(), inject=(), max_new_tokens=12,
                       positions="all", sliced=True):
    """HF greedy generate (KV cache on) with a forward hook editing the layer on every call."""
    edit = reference_sliced_edit if sliced else reference_edit
    calls = {"n": 0}

    def hook(_module, _inputs, output):
        x = output[0] if isinstance(output, tuple) else output
        first = calls["n"] == 0
        calls["n"] += 1
        if not zero and not inject:
            return None
        if positions == "all" or (positions == "generated" and not first):
            return edit(sae, x, zero, inject)
        if positions == "last" and first:
            x = x.clone()
            x[:, -1:] = edit(sae, x[:, -1:], zero, inject)
            return x
        return None

    handle = hf_model.model.layers[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = hf_model.generate(torch.tensor([list(prompt_ids)], device=hf_model.device), max_new_tokens=max_new_tokens,
                                    do_sample=False, use_cache=True, stop_strings=["\n"], tokenizer=tokenizer,
                                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    finally:
        handle.remove()
    return out[0, len(prompt_ids):].tolist()


def reference_next_logits(hf_model, prompt_ids, tokens, sae=None, layer=None, zero=(), inject=(), positions="all"):
    """`[vocab]` logits for the token after `prompt_ids + tokens`, teacher-forced (no KV cache), with the edit
    applied as `reference_generate` applies it: at every position, (`last`) at the last prompt token only, or
    (`generated`) at every position after the prompt."""
    ids = torch.tensor([list(prompt_ids) + list(tokens)], device=hf_model.device)
    handle = None
    if sae is not None and (zero or inject):
        def hook(_module, _inputs, output):
            x = output[0] if isinstance(output, tuple) else output
            if positions == "all":
                return reference_sliced_edit(sae, x, zero, inject)
            x = x.clone()
            where = slice(len(prompt_ids), None) if positions == "generated" else slice(len(prompt_ids) - 1, len(prompt_ids))
            x[:, where] = reference_sliced_edit(sae, x[:, where], zero, inject)
            return x

        handle = hf_model.model.layers[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            return hf_model(ids).logits[0, -1]
    finally:
        if handle is not None:
            handle.remove()


class AuthorsRun(NamedTuple):
    """What the authors' loop (`authors_loop`) produced for one prompt.

    tokens: the generated ids (EOS included when it stopped there). step: the index in `tokens` of the scored
    format token, or None; target: its probability at that step; scores: `[d_sae]` mean over every position of
    relu(∂target/∂h · h) at that step; n_active_last: latents ≠ 0 at that step's last position.
    """

    tokens: list
    step: int | None
    target: float | None
    scores: torch.Tensor | None
    n_active_last: int | None


def authors_loop(hf_model, tokenizer, sae, layer, prompt_ids, max_new_tokens=50, eos=(), zero=(), inject=(),
                 positions="all", score=False):
    """The authors' generation loop, rewritten from their description (no KV cache, no nnsight): each step re-runs
    the whole sequence with a hook returning `decode(encode(x))` (no error term), the latents `zero` set to 0
    and `inject` set to their values at every position (`positions="all"`) or at position −1 only
    (`"current"`); greedy; stops after an id in `eos`. With `score`, every step whose greedy token's text
    contains "[" backpropagates that token's probability to `h` and overwrites the step's scores, so the last
    such step is kept (their record is a dict entry rewritten at each such step).
    """
    ids = list(prompt_ids)
    run = {"step": None, "target": None, "scores": None, "n_active_last": None}
    for step in range(max_new_tokens):
        store = {}

        def hook(_module, _inputs, output):
            x = output[0] if isinstance(output, tuple) else output
            h = sae_encode(sae, x.detach()).clone()
            where = slice(None) if positions == "all" else slice(-1, None)
            for latent in zero:
                h[:, where, latent] = 0.0
            for latent, value in inject:
                h[:, where, latent] = value
            h.requires_grad_(True)
            store["h"] = h
            return sae_decode(sae, h)

        handle = hf_model.model.layers[layer].register_forward_hook(hook)
        try:
            with torch.set_grad_enabled(score):                 # a graph only where a step may backpropagate
                logits = hf_model(torch.tensor([ids], device=hf_model.device), use_cache=False).logits[0, -1]
                probs = logits.float().softmax(-1)
                token = int(probs.argmax())
                if score and "[" in tokenizer.decode([token]):
                    (grad,) = torch.autograd.grad(probs[token], store["h"])
                    h = store["h"][0].detach()
                    run.update(step=step, target=float(probs[token].detach()),
                               scores=torch.relu(grad[0] * h).mean(0), n_active_last=int((h[-1] != 0).sum()))
        finally:
            handle.remove()
        ids.append(token)
        if token in eos:
            break
    return AuthorsRun(ids[len(prompt_ids):], **run)


def authors_k(n_active_last):
    """Their K: half the latents active at the last position, rounded down."""
    return n_active_last // 2


def authors_select(scores, k):
    """Their TopK (first K of a descending sort over all latents; ties by lower id here, as theirs is
    unspecified) and BottomK (the K smallest non-zero scores, ascending)."""
    import numpy as np

    values = scores.detach().numpy()
    top = np.argsort(-values, kind="stable")[:k].tolist()
    nonzero = np.nonzero(values)[0]
    bottom = nonzero[np.argsort(values[nonzero], kind="stable")][:k].tolist()
    return top, bottom


def authors_extract(completion):
    """Their answer extraction: the first `[...]` match (else the whole text), then `[`, `]`, `=` removed."""
    import re

    text = completion.replace("<end_of_turn>", "")
    match = re.search(r"\[\s*(.*?)\s*\]", text)
    if match:
        text = match.group(1)
    return text.replace("[", "").replace("]", "").replace("=", "").strip()
