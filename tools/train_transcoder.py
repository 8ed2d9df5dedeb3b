"""Train the transcoder that section 6b ships: the shipped model's MLP replaced by a sparse, wide layer.

    python -m tools.train_transcoder                         # writes utils/artifacts/transcoder/
    python -m tools.train_transcoder --steps 20 --out /tmp/tc # a smoke test

What it trains: a transcoder from ``blocks.0.ln2.hook_normalized`` (the MLP's input) to
``blocks.0.hook_mlp_out`` (the MLP's output) of the model ``tools.train_lm`` shipped, with a linear skip
connection (``out = acts W_dec + b_dec + x W_skipᵀ``; ``--no-skip`` drops it) and section 5b's BatchTopK
activation: in each training batch of B tokens only the B·k largest pre-activations (over all tokens and
latents together) survive, so the number of active latents per token varies around k. The AuxK loss of
section 5 (the dead latents' top pre-activations reconstruct the residual error) keeps latents from dying.
Decoder rows are kept at unit norm during training, so an activation is the size of its latent's
contribution to the MLP output; at the end the decoder, b_dec and the skip's output are centred along
d_model (see below).

After training, BatchTopK becomes a JumpReLU with one threshold θ shared by all latents, chosen so that
on held-back training tokens the latents fire k times per token on average (the batch-top-k of one very
large batch); at inference a latent's activation then depends on its own token only. That is exactly
SAELens's ``jumprelu_skip_transcoder`` architecture, so the result is written in SAELens's on-disk format
(weights stored as float16, loaded back as float32) and ``sae_lens.SAE.load_from_disk`` reads it.

The data are the MLP inputs and outputs of the shipped model on random training sequences (the files,
tokenizer and split of ``tools.train_lm``), every position including BOS (the replacement model replaces
the MLP at every position). ``manifest.json`` records the command, seed, settings, timings (wall clock and
CPU), the metrics measured on the shipped held-out tokens with the weights as they are stored, and the
sha256 of every file. Metrics: L0, dead and dense latents, fraction of the MLP output's variance explained
(positions >= 1, as section 6), next-token loss clean / with the transcoder in place of the MLP / with the
MLP zero-ablated, the fraction of loss recovered, and two baselines for scale: mean-ablating the MLP and
replacing it by the best affine map (least squares on the training buffer).

Measured for the shipped transcoder (the defaults: d_sae 2048, k 24, 3000 steps of 1024 tokens, one thread):
1076 s in all, 896 s of training, on a 2-core CPU shared with other jobs (load average about 10); the
process itself used 343 s of CPU (298 s training). On the shipped held-out tokens: L0 24.2, 95.1% of the MLP
output's variance explained, 153 dead and 32 dense (> 10%) latents; next-token loss 3.104 clean, 3.155 with
the transcoder in place of the MLP, 6.554 zero-ablated: 98.5% of the loss recovered (the best affine map
recovers 86.8%, mean-ablating the MLP gives 9.380). 1.09 MB on disk.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

from utils.lm import load_eval_tokens, load_model
from utils.paths import LM_DIR
from utils.transcoder import (
    HOOK_IN,
    HOOK_OUT,
    MANIFEST,
    TRANSCODER_DIR,
    Transcoder,
    read_transcoder,
    save_transcoder,
    sha256_file,
)

SEED = 0


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def mlp_pairs(model, tokens: Tensor, batch_size: int = 64, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """(MLP input, MLP output), each ``[n_seq, n_ctx, d_model]``, of `model` on `tokens`."""
    xs, ys = [], []
    for i in range(0, len(tokens), batch_size):
        _, cache = model.run_with_cache(
            tokens[i : i + batch_size], names_filter=lambda n: n in (HOOK_IN, HOOK_OUT), stop_at_layer=1
        )
        xs.append(cache[HOOK_IN].to(dtype))
        ys.append(cache[HOOK_OUT].to(dtype))
    return torch.cat(xs), torch.cat(ys)


def training_buffer(model, n_seq: int, seed: int) -> tuple[Tensor, Tensor]:
    """MLP inputs and outputs ``[n_tokens, d_model]`` (float16) on `n_seq` random training sequences."""
    from tools.train_lm import split_texts, to_sequences

    train_texts, _, _ = split_texts()
    seqs = to_sequences(train_texts, model.tokenizer, model.cfg.n_ctx)
    pick = torch.randperm(len(seqs), generator=torch.Generator().manual_seed(seed))[:n_seq]
    x, y = mlp_pairs(model, seqs[pick], dtype=torch.float16)
    return x.flatten(0, 1), y.flatten(0, 1)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def batch_topk_mask(pre: Tensor, k: int) -> Tensor:
    """True at the batch·k largest positive entries of `pre` [batch d_sae] (section 5b's BatchTopK)."""
    positive = pre.clamp_min(0).flatten()
    n_keep = min(k * pre.shape[0], positive.numel())
    cutoff = positive.topk(n_keep).values[-1]
    return (pre >= cutoff) & (pre > 0)


def train(
    x: Tensor,
    y: Tensor,
    d_sae: int,
    k: int,
    steps: int,
    batch_size: int,
    lr: float,
    aux_coeff: float,
    dead_window: int,
    seed: int,
    skip: bool = True,
    log_every: int = 250,
) -> dict[str, Tensor]:
    """BatchTopK transcoder weights {W_enc, b_enc, W_dec, b_dec[, W_skip]} fitted to y ≈ transcoder(x).

    Adam; the learning rate decays linearly to 0 over the last 20% of the steps. Latents that have not
    fired for `dead_window` steps are "dead": the AuxK loss asks the top 2k of their pre-activations to
    reconstruct what the live latents miss (coefficient `aux_coeff`).
    """
    gen = torch.Generator().manual_seed(seed)
    d_out = y.shape[1]
    sample = x[torch.randint(len(x), (d_sae,), generator=gen)].float()
    sample = sample - sample.mean(0)
    # Encoder columns start as (centred) inputs the model really sees, so every latent fires at first.
    W_enc = (sample / sample.norm(dim=1, keepdim=True)).T.contiguous()
    # Decoder rows: random directions of norm 0.5 (unit norm from the first step on). A smaller first output
    # means smaller first gradients, which Adam's second-moment estimate remembers for hundreds of steps.
    W_dec = torch.randn(d_sae, d_out, generator=gen)
    W_dec = 0.5 * W_dec / W_dec.norm(dim=1, keepdim=True)
    b_enc = torch.zeros(d_sae)
    b_dec = y[:200_000].float().mean(0)
    W_skip = torch.zeros(d_out, x.shape[1])  # the skip connection starts at zero, as in SAELens
    names = ("W_enc", "b_enc", "W_dec", "b_dec", "W_skip") if skip else ("W_enc", "b_enc", "W_dec", "b_dec")
    params = [torch.nn.Parameter(t) for t in (W_enc, b_enc, W_dec, b_dec, W_skip)[: len(names)]]
    W_enc, b_enc, W_dec, b_dec = params[:4]
    opt = torch.optim.Adam(params, lr=lr)
    since_fired = torch.zeros(d_sae, dtype=torch.long)
    k_aux = 2 * k
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (steps - step) / (0.2 * steps))
        idx = torch.randint(len(x), (batch_size,), generator=gen)
        xb, yb = x[idx].float(), y[idx].float()
        pre = xb @ W_enc + b_enc
        acts = pre * batch_topk_mask(pre.detach(), k)
        y_hat = acts @ W_dec + b_dec + (xb @ params[4].T if skip else 0)
        mse = (y_hat - yb).pow(2).sum(-1).mean()
        loss = mse
        since_fired = torch.where((acts > 0).any(0), 0, since_fired + 1)
        dead = since_fired >= dead_window
        if aux_coeff > 0 and dead.any():
            dead_pre = torch.where(dead, pre.clamp_min(0), torch.zeros_like(pre))
            top = dead_pre.topk(min(k_aux, int(dead.sum())), dim=-1)
            aux_acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
            residual = (yb - y_hat).detach()
            loss = loss + aux_coeff * (aux_acts @ W_dec - residual).pow(2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True)
        if step % log_every == 0 or step == steps - 1:
            fve = 1 - (y_hat - yb).pow(2).sum() / (yb - yb.mean(0)).pow(2).sum()
            print(
                f"step {step:5d}  mse {mse.item():8.3f}  FVE {fve.item():.4f}  dead {int(dead.sum()):4d}  "
                f"{time.time() - start:5.0f}s",
                flush=True,
            )
    return {name: p.detach() for name, p in zip(names, params, strict=True)}


@torch.no_grad()
def shared_threshold(weights: dict[str, Tensor], x: Tensor, k: int) -> float:
    """The θ at which the JumpReLU fires k times per token on average over the inputs `x` [n d_in]."""
    pre = (x.float() @ weights["W_enc"] + weights["b_enc"]).flatten()
    return float(pre.topk(k * len(x)).values[-1])


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def mean_loss(model, tokens: Tensor, hooks: list, batch_size: int = 64) -> float:
    """Mean next-token loss over every prediction of `tokens`, with `hooks` in place."""
    total, n = 0.0, 0
    for i in range(0, len(tokens), batch_size):
        loss = model.run_with_hooks(
            tokens[i : i + batch_size], return_type="loss", loss_per_token=True, fwd_hooks=hooks
        )
        total, n = total + float(loss.sum()), n + loss.numel()
    return total / n


def splice_hooks(fn) -> list:
    """Hooks that replace the MLP output by fn(MLP input) (the input is read at HOOK_IN first)."""
    seen: dict[str, Tensor] = {}

    def read(act: Tensor, hook) -> None:
        seen["x"] = act

    return [(HOOK_IN, read), (HOOK_OUT, lambda act, hook: fn(seen["x"]))]


@torch.no_grad()
def transcoder_metrics(model, tc: Transcoder, tokens: Tensor, affine: tuple[Tensor, Tensor] | None = None) -> dict:
    """The transcoder's quality on `tokens` (see the module docstring); `affine` = (A, c) adds the linear baseline."""
    x, y = mlp_pairs(model, tokens)
    x, y = x[:, 1:].flatten(0, 1), y[:, 1:].flatten(0, 1)
    acts = tc.encode(x)
    fve = 1 - (tc(x) - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum()
    freq = (acts > 0).float().mean(0)
    mean_out = y.mean(0)
    clean = mean_loss(model, tokens, [])
    spliced = mean_loss(model, tokens, splice_hooks(tc))
    zero = mean_loss(model, tokens, [(HOOK_OUT, lambda act, hook: torch.zeros_like(act))])
    mean_ablated = mean_loss(model, tokens, [(HOOK_OUT, lambda act, hook: mean_out.expand_as(act))])
    recovered = lambda loss: (zero - loss) / (zero - clean)
    out = {
        "l0": float((acts > 0).float().sum(-1).mean()),
        "fraction_variance_explained": float(fve),
        "dead_latents": int((freq == 0).sum()),
        "dense_latents_gt_0.1": int((freq > 0.1).sum()),
        "ce_clean": clean,
        "ce_spliced": spliced,
        "ce_zero_ablated": zero,
        "ce_loss_recovered": recovered(spliced),
        "ce_mean_ablated": mean_ablated,
        "ce_loss_recovered_vs_mean_ablation": (mean_ablated - spliced) / (mean_ablated - clean),
        "n_eval_tokens": int(x.shape[0]),
    }
    if affine is not None:
        A, c = affine
        out["ce_affine_baseline"] = mean_loss(model, tokens, splice_hooks(lambda inp: inp @ A + c))
        out["ce_loss_recovered_affine_baseline"] = recovered(out["ce_affine_baseline"])
    return out


def affine_fit(x: Tensor, y: Tensor, n: int = 200_000) -> tuple[Tensor, Tensor]:
    """Least-squares affine map y ≈ x A + c on the first `n` buffer rows (the linear baseline)."""
    xs = torch.cat([x[:n].float(), torch.ones(min(n, len(x)), 1)], dim=1)
    solution = torch.linalg.lstsq(xs, y[:n].float()).solution
    return solution[:-1], solution[-1]


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=TRANSCODER_DIR)
    parser.add_argument("--lm", type=Path, default=LM_DIR, help="the folder written by tools.train_lm")
    parser.add_argument("--d-sae", type=int, default=2048)
    parser.add_argument("--k", type=int, default=24, help="BatchTopK: active latents per token, on average")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--aux-coeff", type=float, default=0.125)
    parser.add_argument("--dead-window", type=int, default=100)
    parser.add_argument("--n-seq", type=int, default=6000, help="training sequences whose MLP activations are used")
    parser.add_argument("--no-skip", action="store_true", help="no linear skip connection x W_skipᵀ")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    t0, c0 = time.time(), time.process_time()
    model = load_model(device="cpu", path=args.lm)
    x, y = training_buffer(model, args.n_seq, args.seed)
    print(f"buffer: {tuple(x.shape)} MLP input/output pairs ({time.time() - t0:.0f}s)", flush=True)
    # The last 32 768 rows are held back from training to choose the threshold.
    x_fit, y_fit, x_theta = x[:-32768], y[:-32768], x[-32768:]
    t1, c1 = time.time(), time.process_time()
    weights = train(
        x_fit,
        y_fit,
        args.d_sae,
        args.k,
        args.steps,
        args.batch_size,
        args.lr,
        args.aux_coeff,
        args.dead_window,
        args.seed,
        skip=not args.no_skip,
    )
    train_time, train_cpu = time.time() - t1, time.process_time() - c1
    theta = shared_threshold(weights, x_theta, args.k)
    # Centre the decoder along d_model, as TransformerLens centres every weight that writes to the residual
    # stream: the next LayerNorm subtracts the mean anyway, so no logit changes, but then a decoder row
    # times W_U is exactly a latent's direct effect on the logits (up to the final scale).
    weights["W_dec"] = weights["W_dec"] - weights["W_dec"].mean(-1, keepdim=True)
    weights["b_dec"] = weights["b_dec"] - weights["b_dec"].mean()
    if "W_skip" in weights:  # [d_out d_in]: centre each input's output column
        weights["W_skip"] = weights["W_skip"] - weights["W_skip"].mean(0, keepdim=True)
    tc = Transcoder(
        weights["W_enc"],
        weights["b_enc"],
        weights["W_dec"],
        weights["b_dec"],
        threshold=torch.full((args.d_sae,), theta),
        W_skip=weights.get("W_skip"),
        hook_name=HOOK_IN,
        hook_name_out=HOOK_OUT,
    )
    out: Path = args.out
    lm_manifest = json.loads((args.lm / "manifest.json").read_text())
    metadata = {
        "model_name": "stdlib-1l-gelu",
        "model_class_name": "HookedTransformer",
        "context_size": model.cfg.n_ctx,
        "prepend_bos": True,
        "dataset_path": f"python-{lm_manifest['data']['python']}-stdlib (see tools/train_lm.py)",
        "sae_lens_training_version": None,
    }
    for stale in (out / MANIFEST,):
        stale.unlink(missing_ok=True)
    save_transcoder(tc, out, metadata)
    shipped = read_transcoder(out)  # measure what ships: float16 weights read back as float32
    metrics = transcoder_metrics(model, shipped, load_eval_tokens("cpu", path=args.lm), affine_fit(x_fit, y_fit))
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {
        "command": "python -m tools.train_transcoder " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seed": args.seed,
        "transcoder": (
            f"{HOOK_IN} -> {HOOK_OUT}; BatchTopK (section 5b) with AuxK (section 5) in training, "
            f"shipped as a JumpReLU with one shared threshold (SAELens architecture {tc.architecture!r})"
        ),
        "skip_connection": tc.W_skip is not None,
        "d_sae": args.d_sae,
        "k": args.k,
        "threshold": theta,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_schedule": "constant, then linear decay to 0 over the last 20% of steps",
        "aux_coeff": args.aux_coeff,
        "dead_window": args.dead_window,
        "n_seq": args.n_seq,
        "n_buffer_tokens": int(x.shape[0]),
        "threads": args.threads,
        "torch": torch.__version__,
        "stored_dtype": "float16",
        "lm_model_sha256": lm_manifest["sha256"]["model.safetensors"],
        "metrics_on_shipped_eval_tokens": metrics,
        "train_seconds": round(train_time, 1),
        "total_seconds": round(time.time() - t0, 1),
        # CPU time of this process over all its threads: on a machine shared with other jobs the wall-clock
        # times above stretch, this does not (on an idle 2-core machine, wall time ≈ CPU time / 2).
        "train_cpu_seconds": round(train_cpu, 1),
        "total_cpu_seconds": round(time.process_time() - c0, 1),
        "sha256": {p.relative_to(out).as_posix(): sha256_file(p) for p in files},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    print(f"wrote {out} in {time.time() - t0:.0f}s (training {train_time:.0f}s)")


if __name__ == "__main__":
    main()
