"""Train the SAE that section 6 ships, on the MLP activations of the shipped one-layer model.

    python -m tools.train_lm_sae --sparsity-coeff 2e-3  # writes utils/artifacts/sae/ (the shipped SAE)
    python -m tools.train_lm_sae --steps 20 --out /tmp/sae   # a smoke test

Measured for the shipped SAE (2000 steps of 512 activations, d_sae 1024, sparsity coefficient 2e-3):
349 s in all, 240 s of training, on one thread of a shared 2-core CPU. On the shipped held-out tokens:
L0 32.8, fraction of variance explained 0.771, 117 dead and 33 dense (> 10%) latents, CE loss 3.104 clean,
3.373 spliced, 6.170 zero-ablated: 91.2% of the loss recovered. (Coefficients 1e-3 and 4e-3 gave L0 58 /
234 dense latents / 92% recovered and L0 9 / 54% FVE / 59% recovered.)

The SAE is section 5's: ``ToySAE`` from ``solutions/part5_toy_saes.py`` with one instance, trained by
``utils.sae_training.train_sae`` (Adam, advanced resampling of dead latents). Its ``generate_batch`` is
replaced by sampling from a buffer of ``blocks.0.mlp.hook_post`` activations of the shipped model on
training sequences of the standard library (the same files, tokenizer and split as ``tools.train_lm``;
the BOS position is left out, its activations are outliers). The result is written in SAELens's on-disk
format (``cfg.json`` + ``sae_weights.safetensors``, decoder rows unit norm) with ``manifest.json``:
the command, seed, data description, hashes and the metrics measured on the shipped held-out tokens
(L0, fraction of variance explained, dead latents, CE loss clean / spliced / zero-ablated and the
fraction of loss recovered).

This is a build script: it is the one place in utils/ that uses section code (section 5's SAE), imported
inside ``main`` only, so importing ``utils`` never pulls in a section.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from functools import partial
from pathlib import Path

import torch

from utils.lm import LMSAE, hook_activations, load_eval_tokens, load_model, save_sae
from utils.paths import LM_DIR, SAE_DIR

HOOK = "blocks.0.mlp.hook_post"
SEED = 0


@torch.no_grad()
def sae_metrics(model, sae: LMSAE, tokens: torch.Tensor, batch_size: int = 64) -> dict[str, float]:
    """L0, FVE and dead latents over positions >= 1; CE losses over every prediction of `tokens`."""
    h = hook_activations(model, sae.hook_name, tokens, batch_size)[:, 1:].reshape(-1, sae.d_in)
    acts = sae.encode(h)
    recon = sae.decode(acts)
    fve = 1 - (recon - h).pow(2).sum() / (h - h.mean(0)).pow(2).sum()
    freq = (acts > 0).float().mean(0)

    def loss_with(hook_fn=None) -> float:
        total, n = 0.0, 0
        for i in range(0, len(tokens), batch_size):
            batch = tokens[i : i + batch_size]
            hooks = [(sae.hook_name, hook_fn)] if hook_fn else []
            loss = model.run_with_hooks(batch, return_type="loss", loss_per_token=True, fwd_hooks=hooks)
            total, n = total + float(loss.sum()), n + loss.numel()
        return total / n

    clean = loss_with()
    spliced = loss_with(lambda act, hook: sae.decode(sae.encode(act)))
    zero = loss_with(lambda act, hook: torch.zeros_like(act))
    return {
        "l0": float((acts > 0).float().sum(-1).mean()),
        "fraction_variance_explained": float(fve),
        "dead_latents": int((freq == 0).sum()),
        "dense_latents_gt_0.1": int((freq > 0.1).sum()),
        "ce_clean": clean,
        "ce_spliced": spliced,
        "ce_zero_ablated": zero,
        "ce_loss_recovered": (zero - spliced) / (zero - clean),
        "n_eval_tokens": int(h.shape[0]),
    }


def refresh_config(out: Path) -> None:
    """Rewrite ``cfg.json`` with the current `save_sae` (same weights, same metadata) and update the hashes.

    Used once after the shipped SAE was trained, when `save_sae` learned to mark its files with the
    SAELens format version (SAELens otherwise drops the hook name from a file it thinks is pre-6.0).
    """
    from utils.lm import load_sae

    sae = load_sae(out, device="cpu")
    before = (out / "sae_weights.safetensors").read_bytes()
    meta = {k: v for k, v in sae.metadata.items() if k not in ("hook_name", "hook_head_index", "sae_lens_version")}
    save_sae(sae, out, meta)
    if (out / "sae_weights.safetensors").read_bytes() != before:
        raise SystemExit("re-saving changed the weights: refusing to refresh the manifest")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["sha256"]["cfg.json"] = hashlib.sha256((out / "cfg.json").read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"rewrote {out / 'cfg.json'}")


def activation_buffer(model, n_seq: int, seed: int) -> torch.Tensor:
    """hook_post activations [n_tokens, d_mlp] (float16, BOS position dropped) on random training sequences."""
    from tools.train_lm import split_texts, to_sequences

    train_texts, _, _ = split_texts()
    seqs = to_sequences(train_texts, model.tokenizer, model.cfg.n_ctx)
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(seqs), generator=gen)[:n_seq]
    acts = hook_activations(model, HOOK, seqs[pick].to(model.cfg.device))
    return acts[:, 1:].reshape(-1, acts.shape[-1]).to(torch.float16)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SAE_DIR)
    parser.add_argument("--lm", type=Path, default=LM_DIR, help="the folder written by tools.train_lm")
    parser.add_argument("--d-sae", type=int, default=1024)
    parser.add_argument("--sparsity-coeff", type=float, default=2e-3)
    parser.add_argument(
        "--sweep", default=None, help="e.g. 1e-4,3e-4,1e-3: pick the coefficient by short runs aiming at --target-l0"
    )
    parser.add_argument("--sweep-steps", type=int, default=300)
    parser.add_argument("--target-l0", type=float, default=25.0, help="L0 the sweep aims for (at its end)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-seq", type=int, default=1600, help="training sequences whose activations fill the buffer")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--refresh-config", action="store_true", help="rewrite cfg.json of the SAE in --out (weights untouched)"
    )
    args = parser.parse_args(argv)
    if args.refresh_config:
        refresh_config(args.out)
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    # Section 5's SAE and training loop (see the module docstring for why the import is here).
    from solutions.part5_toy_saes import ToySAE, ToySAEConfig, resample_advanced
    from utils.sae_training import train_sae

    t0 = time.time()
    model = load_model(device="cpu", path=args.lm)
    buffer = activation_buffer(model, args.n_seq, args.seed)
    print(f"buffer: {tuple(buffer.shape)} activations ({time.time() - t0:.0f}s)", flush=True)

    def make_sae(coeff: float, n_inst: int = 1):
        cfg = ToySAEConfig(n_inst=n_inst, d_in=model.cfg.d_mlp, d_sae=args.d_sae, sparsity_coeff=coeff)
        sae = ToySAE(cfg, None).to("cpu")
        gen = torch.Generator().manual_seed(args.seed + 1)
        sae.generate_batch = lambda n: (
            buffer[torch.randint(len(buffer), (n,), generator=gen)].float()[:, None, :].expand(n, n_inst, -1)
        )
        return sae

    sweep = {}
    coeff = args.sparsity_coeff
    if args.sweep:
        # One batched run with one SAE instance per coefficient; pick the coefficient whose L0 at the end
        # of the short run is nearest the target on a log scale (interpolating between neighbours).
        coeffs = [float(c) for c in args.sweep.split(",")]
        trial = make_sae(coeffs, n_inst=len(coeffs))
        trial_log = train_sae(trial, steps=args.sweep_steps, batch_size=256, lr=args.lr, log_freq=50, progress=False)
        l0s = trial_log.l0[-1].tolist()
        sweep = dict(zip(map(str, coeffs), l0s, strict=True))
        print(f"sweep (coefficient: L0 after {args.sweep_steps} steps): {sweep}", flush=True)
        logc, logl = torch.tensor(coeffs).log(), torch.tensor(l0s).clamp_min(1e-3).log()
        target = torch.tensor(args.target_l0).log()
        coeff = coeffs[int((logl - target).abs().argmin())]
        for i in range(len(coeffs) - 1):  # L0 falls as the coefficient grows
            if logl[i] >= target >= logl[i + 1]:
                w = float((logl[i] - target) / (logl[i] - logl[i + 1]))
                coeff = float(torch.exp(logc[i] + w * (logc[i + 1] - logc[i])))
        print(f"chosen sparsity coefficient {coeff:.3g}", flush=True)
    sae = make_sae(coeff)
    t1 = time.time()
    log = train_sae(
        sae,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        log_freq=100,
        resampler=partial(resample_advanced, batch_size=args.batch_size),
        resample_freq=1000,
        resample_window=250,
        resample_scale=0.2,
        progress=False,
    )
    train_time = time.time() - t1
    for s, loss, l0 in zip(log.steps, log.loss, log.l0, strict=True):
        if s % 500 == 0 or s == log.steps[-1]:
            print(f"step {s:5d}  loss {loss:.4f}  L0 {float(l0.mean()):.1f}", flush=True)

    with torch.no_grad():
        lm_sae = LMSAE(sae.W_enc[0], sae.W_dec_normalized[0], sae.b_enc[0], sae.b_dec[0], HOOK)
    # Measure the SAE exactly as it is shipped (float16 weights read back as float32).
    out: Path = args.out
    lm_manifest = json.loads((args.lm / "manifest.json").read_text())
    metadata = {
        "model_name": "stdlib-1l-gelu",
        "model_class_name": "HookedTransformer",
        "hook_name": HOOK,
        "context_size": model.cfg.n_ctx,
        "prepend_bos": True,
        "dataset_path": f"python-{lm_manifest['data']['python']}-stdlib (see utils/train_lm.py)",
        "sae_lens_training_version": None,
    }
    save_sae(lm_sae, out, metadata)
    from utils.lm import load_sae

    shipped = load_sae(out, device="cpu")
    metrics = sae_metrics(model, shipped, load_eval_tokens("cpu", path=args.lm))
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        "command": "python -m tools.train_lm_sae " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seed": args.seed,
        "sae": "section 5 ToySAE (ReLU, untied, L1 penalty) trained by utils.sae_training.train_sae",
        "d_sae": args.d_sae,
        "sparsity_coeff": coeff,
        "sweep_l0": sweep,
        "target_l0": args.target_l0,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "resampling": "advanced, every 1000 steps over a 250-step window, scale 0.2",
        "n_buffer_tokens": int(buffer.shape[0]),
        "threads": args.threads,
        "torch": torch.__version__,
        "lm_model_sha256": lm_manifest["sha256"]["model.safetensors"],
        "metrics_on_shipped_eval_tokens": metrics,
        "train_seconds": round(train_time, 1),
        "total_seconds": round(time.time() - t0, 1),
        "sha256": {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    print(f"wrote {out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
