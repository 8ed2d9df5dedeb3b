"""Train the tokenizer and the one-layer GELU transformer that section 6 ships, on the standard library's source.

    python -m tools.train_lm                            # writes utils/artifacts/lm/
    python -m tools.train_lm --steps 20 --out /tmp/lm   # a smoke test

Measured for the shipped artifacts: 2010 s in all (1827 s of training, 1000 steps of 24 x 128 tokens),
on one thread of a 2-core CPU shared with other jobs (load average about 14), Python 3.11.7, torch 2.13.
Held-out loss 3.13 nats/token, against 3.85 for a bigram model and 6.31 for a unigram model.

Data: every ``.py`` file of the running Python's standard library (``sysconfig.get_paths()["stdlib"]``),
without test suites and vendored packages, sorted by relative path. Every machine with Python has it,
so nothing is downloaded. Files whose relative path hashes to 0 mod 16 are held out for evaluation.
The script records the Python version, a hash of the file list and contents, the seed and the measured
losses (the model's, and a unigram and a bigram baseline on the same held-out tokens) in
``utils/artifacts/lm/manifest.json``. The same Python version (same stdlib files) and seed give the
same tokenizer and, on the same device and torch version, the same weights.

Written out:
* ``tokenizer/``: a byte-level BPE tokenizer (``tokenizers``), saved as a ``transformers`` fast tokenizer;
* ``model.safetensors`` (float16, loaded as float32) and ``config.json`` (a ``HookedTransformerConfig``);
* ``eval_tokens.safetensors``: held-out sequences ``[n_seq, n_ctx]`` (int16), BOS first, used by the notebook.

This module imports no section code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import sysconfig
import time
from pathlib import Path

import torch

from utils.paths import LM_DIR

BOS = "<|endoftext|>"
EXCLUDED_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "lib2to3", "ensurepip"}
HOLDOUT_MOD = 16
SEED = 0

MODEL_CONFIG = dict(
    n_layers=1,
    d_model=128,
    n_heads=4,
    d_head=32,
    d_mlp=512,
    n_ctx=128,
    d_vocab=2048,
    act_fn="gelu",
    normalization_type="LN",
    positional_embedding_type="standard",
    original_architecture="stdlib-1l-gelu",
)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The standard library's .py files (no test suites or vendored code), sorted by relative path."""
    root = root or stdlib_root()
    files = [p for p in root.rglob("*.py") if p.is_file() and not EXCLUDED_DIRS & set(p.relative_to(root).parts[:-1])]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def is_held_out(relative: str) -> bool:
    return int(hashlib.sha256(relative.encode()).hexdigest(), 16) % HOLDOUT_MOD == 0


def fingerprint(files: list[Path], root: Path) -> str:
    """sha256 over (relative path, sha256 of content) of every file, in order."""
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(root).as_posix().encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def split_texts(root: Path | None = None) -> tuple[list[str], list[str], dict]:
    """(train texts, held-out texts, data description)."""
    root = root or stdlib_root()
    files = stdlib_files(root)
    if not files:
        raise SystemExit(f"no .py files under {root}: is this a full Python installation?")
    train, held = [], []
    for p in files:
        (held if is_held_out(p.relative_to(root).as_posix()) else train).append(read_text(p))
    info = {
        "python": platform.python_version(),
        "stdlib": str(root),
        "n_files": len(files),
        "n_train_files": len(train),
        "n_heldout_files": len(held),
        "files_sha256": fingerprint(files, root),
        "excluded_dirs": sorted(EXCLUDED_DIRS),
        "holdout_rule": f"sha256(relative path) % {HOLDOUT_MOD} == 0",
    }
    return train, held, info


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------
def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (no unknown tokens) as a transformers fast tokenizer; BOS = EOS = PAD."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=BOS, pad_token=BOS)


def load_tokenizer(path: Path):
    """The tokenizer saved by `train_tokenizer(...).save_pretrained(path)`, read from disk only."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def to_sequences(texts: list[str], tokenizer, n_ctx: int) -> torch.Tensor:
    """Concatenate the files (BOS between them) and cut into [n_seq, n_ctx] rows that each start with BOS."""
    bos = tokenizer.bos_token_id
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        stream.append(bos)
        stream.extend(ids)
    body = n_ctx - 1
    n_seq = len(stream) // body
    flat = torch.tensor(stream[: n_seq * body], dtype=torch.long).view(n_seq, body)
    return torch.cat([torch.full((n_seq, 1), bos, dtype=torch.long), flat], dim=1)


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------
def ngram_baselines(train: torch.Tensor, held: torch.Tensor, d_vocab: int) -> dict[str, float]:
    """Held-out next-token cross-entropy (nats) of a unigram and a bigram model fitted on `train`.

    Both predict every position after the first of each row, like the transformer. Unigram: add-one
    smoothed counts. Bigram: counts shrunk to the unigram with a Dirichlet prior of strength alpha;
    the best alpha on the held-out set is reported, which flatters the baseline (a conservative comparison).
    """
    prev, nxt = train[:, :-1].reshape(-1), train[:, 1:].reshape(-1)
    uni = torch.bincount(nxt, minlength=d_vocab).double() + 1
    uni = uni / uni.sum()
    h_prev, h_next = held[:, :-1].reshape(-1), held[:, 1:].reshape(-1)
    out = {"unigram_loss": float(-uni[h_next].log().mean())}
    pair = torch.bincount(prev * d_vocab + nxt, minlength=d_vocab * d_vocab).double().view(d_vocab, d_vocab)
    row = pair.sum(1)
    best = math.inf
    for alpha in (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0):
        p = (pair[h_prev, h_next] + alpha * uni[h_next]) / (row[h_prev] + alpha)
        loss = float(-p.log().mean())
        if loss < best:
            best, out["bigram_alpha"] = loss, alpha
    out["bigram_loss"] = best
    return out


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------
def make_model(config: dict, tokenizer=None, device: str | torch.device = "cpu"):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(**config, device=str(device))
    return HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="right")


@torch.no_grad()
def heldout_loss(model, tokens: torch.Tensor, batch_size: int = 64) -> float:
    total, n = 0.0, 0
    for i in range(0, len(tokens), batch_size):
        batch = tokens[i : i + batch_size].to(model.cfg.device)
        loss = model(batch, return_type="loss", loss_per_token=True)
        total += float(loss.sum())
        n += loss.numel()
    return total / n


def train_model(
    model, tokens: torch.Tensor, steps: int, batch_size: int, lr: float, seed: int, warmup: int = 50
) -> list[float]:
    """AdamW, linear warm-up then cosine decay to 10% of lr; batches drawn by a seeded generator."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.05)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(tokens), generator=gen)
    losses, cursor = [], 0
    start = time.time()
    for step in range(steps):
        scale = (step + 1) / warmup if step < warmup else 0.1 + 0.45 * (1 + math.cos(math.pi * step / steps))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(tokens), generator=gen), 0
        batch = tokens[order[cursor : cursor + batch_size]].to(model.cfg.device)
        cursor += batch_size
        loss = model(batch, return_type="loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            recent = sum(losses[-50:]) / len(losses[-50:])
            print(f"step {step:5d}  loss {recent:.3f}  {time.time() - start:6.0f}s", flush=True)
    return losses


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=LM_DIR)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-eval-seqs", type=int, default=512, help="held-out rows shipped for the notebook")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from safetensors.torch import save_file

    t0 = time.time()
    train_texts, held_texts, data_info = split_texts()
    tokenizer = train_tokenizer(train_texts, MODEL_CONFIG["d_vocab"])
    train_tokens = to_sequences(train_texts, tokenizer, MODEL_CONFIG["n_ctx"])
    held_tokens = to_sequences(held_texts, tokenizer, MODEL_CONFIG["n_ctx"])
    print(f"data: {train_tokens.numel():,} train / {held_tokens.numel():,} held-out tokens ({time.time() - t0:.0f}s)")

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    # TransformerLens re-loads the tokenizer from its folder (to add a BOS token), so save it first.
    tokenizer.save_pretrained(out / "tokenizer")
    tokenizer = load_tokenizer(out / "tokenizer")
    model = make_model(MODEL_CONFIG, tokenizer)
    t1 = time.time()
    losses = train_model(model, train_tokens, args.steps, args.batch_size, args.lr, args.seed)
    train_time = time.time() - t1

    # Ship float16 weights; every number below is measured on the model as it is loaded back (float32).
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in state.items()})
    metrics = {"model_loss": heldout_loss(model, held_tokens)}
    metrics.update(ngram_baselines(train_tokens, held_tokens, MODEL_CONFIG["d_vocab"]))
    metrics["final_train_loss_last50"] = sum(losses[-50:]) / len(losses[-50:])

    save_file(state, out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(MODEL_CONFIG, indent=2) + "\n")
    gen = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(held_tokens), generator=gen)[: args.n_eval_seqs].sort().values
    save_file({"tokens": held_tokens[pick].to(torch.int16).contiguous()}, out / "eval_tokens.safetensors")
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        "command": "python -m tools.train_lm " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "threads": args.threads,
        "torch": torch.__version__,
        "device": "cpu",
        "data": data_info,
        "n_train_tokens": train_tokens.numel(),
        "n_heldout_tokens": held_tokens.numel(),
        "metrics_nats_per_token": metrics,
        "train_seconds": round(train_time, 1),
        "total_seconds": round(time.time() - t0, 1),
        "sha256": {p.relative_to(out).as_posix(): sha256_file(p) for p in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    print(f"wrote {out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
