"""The shipped language model and SAE: integrity, offline loading (own loader and SAELens), measured quality.

Nothing here touches the network: the online path of `utils.lm` is only exercised up to the point
where it would need one (argument checks), and SAELens is used to read and write local folders.
"""

from __future__ import annotations

import hashlib
import json
import platform

import pytest
import torch
from safetensors.torch import save_file

from utils import lm
from utils import part6_lm_saes as figures
from utils.paths import ARTIFACTS, LM_DIR, SAE_DIR

SAE_MANIFEST = SAE_DIR / "manifest.json"
LM_MANIFEST = LM_DIR / "manifest.json"


def _manifest(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def model():
    return lm.load_model(device="cpu")


@pytest.fixture(scope="module")
def sae():
    return lm.load_sae(device="cpu")


@pytest.mark.parametrize("folder", [LM_DIR, SAE_DIR], ids=["lm", "sae"])
def test_files_match_their_recorded_hashes(folder):
    recorded = _manifest(folder / "manifest.json")["sha256"]
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert sorted([*recorded, "manifest.json"]) == on_disk, "files were added to or removed from the artifacts"
    for name, digest in recorded.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, f"{folder / name} changed"


def test_artifacts_stay_small():
    total = sum(p.stat().st_size for p in ARTIFACTS.rglob("*") if p.is_file())
    assert total < 5_000_000, f"the artifacts take {total / 1e6:.1f} MB; the repository budget is a few MB"


def test_sae_was_trained_on_the_shipped_model():
    lm_hash = _manifest(LM_MANIFEST)["sha256"]["model.safetensors"]
    assert _manifest(SAE_MANIFEST)["lm_model_sha256"] == lm_hash


def test_training_data_fingerprint_is_reproducible_here():
    data = _manifest(LM_MANIFEST)["data"]
    if platform.python_version() != data["python"]:
        pytest.skip(f"artifacts were built from Python {data['python']}'s stdlib, this is {platform.python_version()}")
    from tools.train_lm import fingerprint, stdlib_files, stdlib_root  # tools are imported where used

    root = stdlib_root()
    files = stdlib_files(root)
    assert len(files) == data["n_files"]
    assert fingerprint(files, root) == data["files_sha256"]


def test_model_loads_offline_and_beats_the_ngram_baselines(model):
    metrics = _manifest(LM_MANIFEST)["metrics_nats_per_token"]
    tokens = lm.load_eval_tokens("cpu")
    with torch.no_grad():
        loss = sum(model(batch, return_type="loss").item() for batch in tokens.split(128)) / len(tokens.split(128))
    # The loaded model reproduces the clean loss that tools.train_lm_sae measured on the same shipped rows
    # (float32 on CPU: only the order of operations can differ).
    assert loss == pytest.approx(_manifest(SAE_MANIFEST)["metrics_on_shipped_eval_tokens"]["ce_clean"], rel=1e-4)
    # The claim the section makes: a real model, clearly better than counting bigrams (all held-out files).
    assert metrics["model_loss"] < metrics["bigram_loss"] - 0.2 < metrics["unigram_loss"]
    assert model.cfg.act_fn == "gelu" and model.cfg.n_layers == 1


def test_tokenizer_round_trips_python_source(model):
    text = 'def f(self, x):\n    return self.x["a"] + 1\n'
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert model.tokenizer.decode(ids) == text
    assert model.to_tokens(text)[0, 0].item() == model.tokenizer.bos_token_id


def test_sae_metrics_match_the_manifest(model, sae):
    from tools.train_lm_sae import sae_metrics

    recorded = _manifest(SAE_MANIFEST)["metrics_on_shipped_eval_tokens"]
    measured = sae_metrics(model, sae, lm.load_eval_tokens("cpu"))
    for key in ("l0", "fraction_variance_explained", "ce_clean", "ce_spliced", "ce_zero_ablated"):
        assert measured[key] == pytest.approx(recorded[key], rel=1e-3, abs=1e-4), key
    assert abs(measured["dead_latents"] - recorded["dead_latents"]) <= 2
    # What the section's prose relies on: a sparse SAE that keeps most of what the MLP does.
    assert 3 < recorded["l0"] < 100
    assert recorded["fraction_variance_explained"] > 0.6
    assert recorded["ce_loss_recovered"] > 0.6


def test_saelens_loads_the_shipped_sae(sae):
    sae_lens = pytest.importorskip("sae_lens")
    loaded = sae_lens.SAE.load_from_disk(str(SAE_DIR), device="cpu")
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        torch.testing.assert_close(getattr(loaded, name).detach().float(), getattr(sae, name).detach())
    assert loaded.cfg.metadata.hook_name == sae.hook_name == "blocks.0.mlp.hook_post"
    x = torch.randn(5, sae.d_in)
    torch.testing.assert_close(loaded.encode(x), sae.encode(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loaded.decode(sae.encode(x)), sae.decode(sae.encode(x)), rtol=1e-4, atol=1e-5)


def test_own_loader_reads_an_sae_written_by_saelens(tmp_path):
    sae_lens = pytest.importorskip("sae_lens")
    cfg = sae_lens.StandardSAEConfig(d_in=6, d_sae=10)
    cfg.metadata.hook_name = "blocks.0.hook_mlp_out"
    theirs = sae_lens.StandardSAE(cfg)
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_()
    theirs.save_model(str(tmp_path))
    ours = lm.load_sae(tmp_path, device="cpu")
    assert ours.hook_name == "blocks.0.hook_mlp_out"
    x = torch.randn(7, 6)
    torch.testing.assert_close(ours.encode(x), theirs.encode(x).detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours(x), theirs.decode(theirs.encode(x)).detach(), rtol=1e-4, atol=1e-5)


def test_save_and_load_round_trip(tmp_path, sae):
    lm.save_sae(sae, tmp_path, {"model_name": "test"})
    again = lm.load_sae(tmp_path, device="cpu")
    torch.testing.assert_close(again.W_dec, sae.W_dec)  # already float16-representable: exact
    assert json.loads((tmp_path / "cfg.json").read_text())["metadata"]["model_name"] == "test"


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_lm"):
        lm.load_sae(tmp_path)
    with pytest.raises(ValueError, match="sae_id"):
        lm.load_sae(release="gpt2-small-mlp-tm")  # checked before any network access
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": "topk", "metadata": {"hook_name": "x"}}))
    save_file({"W_enc": torch.zeros(3, 4)}, str(tmp_path / "sae_weights.safetensors"))
    with pytest.raises(ValueError, match="topk"):
        lm.load_sae(tmp_path)
    with pytest.raises(ValueError, match="inconsistent"):
        lm.LMSAE(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(3), torch.zeros(4), "h")


def test_max_activating_html_is_offline_and_escaped(model):
    tokens = model.to_tokens('x = "<b>" + y\n', prepend_bos=True)
    acts = torch.linspace(0, 1, tokens.shape[1])[None]
    markup = figures.max_activating_html(model.tokenizer, tokens, acts, [0], [tokens.shape[1] - 1], title="t")
    assert "<script" not in markup and "http" not in markup, "the HTML must render offline, with no scripts"
    assert "&lt;" in markup and "&gt;" in markup and "<b>" not in markup
    assert "⏎" in markup and "outline" in markup
