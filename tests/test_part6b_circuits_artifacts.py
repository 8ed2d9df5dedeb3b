"""The shipped transcoder: integrity, offline loading (our loader and SAELens's), and the measured quality
that the section and the README report. Nothing here touches the network."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from utils import lm
from utils.paths import LM_DIR
from utils.transcoder import TRANSCODER_DIR, Transcoder, load_transcoder, manifest, read_transcoder, save_transcoder


@pytest.fixture(scope="module")
def model():
    return lm.load_model(device="cpu")


@pytest.fixture(scope="module")
def tc():
    return load_transcoder(device="cpu")


def test_files_match_their_recorded_hashes():
    recorded = manifest()["sha256"]
    on_disk = sorted(p.relative_to(TRANSCODER_DIR).as_posix() for p in TRANSCODER_DIR.rglob("*") if p.is_file())
    assert sorted([*recorded, "manifest.json"]) == on_disk, "files were added to or removed from the transcoder folder"
    for name, digest in recorded.items():
        assert hashlib.sha256((TRANSCODER_DIR / name).read_bytes()).hexdigest() == digest, name


def test_loading_refuses_a_changed_file(tmp_path):
    copy = tmp_path / "tc"
    shutil.copytree(TRANSCODER_DIR, copy)
    weights = copy / "sae_weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_transcoder(copy, device="cpu")
    load_transcoder(copy, device="cpu", check_hashes=False)  # still a valid file: only the hash check refuses it
    (copy / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="train_transcoder"):
        load_transcoder(copy, device="cpu")


def test_small_and_trained_on_the_shipped_model():
    size = sum(p.stat().st_size for p in TRANSCODER_DIR.rglob("*") if p.is_file())
    assert size < 1_200_000, f"the transcoder takes {size / 1e6:.2f} MB"
    lm_hash = json.loads((LM_DIR / "manifest.json").read_text())["sha256"]["model.safetensors"]
    assert manifest()["lm_model_sha256"] == lm_hash


def test_weights_load_as_float32_with_the_recorded_shape(tc):
    m = manifest()
    assert tc.W_enc.dtype == torch.float32 and tc.d_sae == m["d_sae"] and tc.d_in == tc.d_out == 128
    assert tc.architecture == "jumprelu_skip_transcoder" and tc.W_skip is not None
    torch.testing.assert_close(tc.threshold, torch.full_like(tc.threshold, m["threshold"]), rtol=1e-3, atol=1e-3)
    # Centred along d_model, like every weight that writes to the residual stream (rows, bias, skip output).
    torch.testing.assert_close(tc.W_dec.mean(-1), torch.zeros(tc.d_sae), rtol=0, atol=1e-3)
    torch.testing.assert_close(tc.W_skip.mean(0), torch.zeros(tc.d_in), rtol=0, atol=1e-3)


def test_metrics_match_the_manifest(model, tc):
    from tools.train_transcoder import transcoder_metrics

    recorded = manifest()["metrics_on_shipped_eval_tokens"]
    with torch.no_grad():
        measured = transcoder_metrics(model, tc, lm.load_eval_tokens("cpu"))
    for key in ("l0", "fraction_variance_explained", "ce_clean", "ce_spliced", "ce_zero_ablated", "ce_loss_recovered"):
        assert measured[key] == pytest.approx(recorded[key], rel=1e-3, abs=1e-4), key
    assert abs(measured["dead_latents"] - recorded["dead_latents"]) <= 2
    # What the section and the README say: good enough to matter, and clearly better than a linear map.
    assert recorded["ce_loss_recovered"] >= 0.9
    assert recorded["fraction_variance_explained"] > 0.9
    assert recorded["ce_loss_recovered"] > recorded["ce_loss_recovered_affine_baseline"] + 0.05
    assert 10 < recorded["l0"] < 40


def test_saelens_reads_the_shipped_transcoder(tc):
    sae_lens = pytest.importorskip("sae_lens")
    theirs = sae_lens.SAE.load_from_disk(str(TRANSCODER_DIR), device="cpu")
    assert type(theirs).__name__ == "JumpReLUSkipTranscoder"
    assert theirs.cfg.metadata.hook_name == tc.hook_name and theirs.cfg.metadata.hook_name_out == tc.hook_name_out
    x = torch.randn(6, 128) * 2
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode(x), tc.encode(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(theirs(x), tc(x), rtol=1e-4, atol=1e-4)


def test_saelens_splices_it(model, tc):
    """SAELens's HookedSAETransformer runs the transcoder in place of the MLP. Its wrapper calls encode and decode,
    not forward, so (in SAELens 6.54) the skip term is left out, as section 6b says; with its error term the
    model comes back exactly."""
    sae_lens = pytest.importorskip("sae_lens")
    from tools.train_transcoder import mean_loss, splice_hooks

    tokens = lm.load_eval_tokens("cpu", n_seq=8)
    hooked = sae_lens.HookedSAETransformer(model.cfg, tokenizer=model.tokenizer)
    hooked.load_state_dict(model.state_dict(), strict=False)
    theirs = sae_lens.SAE.load_from_disk(str(TRANSCODER_DIR), device="cpu")
    with torch.no_grad():
        hooked.add_sae(theirs)
        spliced = hooked(tokens, return_type="loss").item()
        hooked.add_sae(theirs, use_error_term=True)
        with_error = hooked(tokens, return_type="loss").item()
        ours = mean_loss(model, tokens, splice_hooks(tc))
        ours_without_skip = mean_loss(model, tokens, splice_hooks(lambda x: tc.decode(tc.encode(x))))
        clean = model(tokens, return_type="loss").item()
    assert with_error == pytest.approx(clean, rel=1e-4)
    if sae_lens.__version__.startswith("6.54"):
        assert spliced == pytest.approx(ours_without_skip, rel=1e-4) and abs(spliced - ours) > 1e-3
    else:
        assert spliced == pytest.approx(ours, rel=1e-4) or spliced == pytest.approx(ours_without_skip, rel=1e-4)


@pytest.mark.parametrize("skip", [False, True])
def test_our_loader_reads_what_saelens_writes(tmp_path, skip):
    sae_lens = pytest.importorskip("sae_lens")
    cls, cfg_cls = (
        (sae_lens.JumpReLUSkipTranscoder, sae_lens.JumpReLUSkipTranscoderConfig)
        if skip
        else (sae_lens.JumpReLUTranscoder, sae_lens.JumpReLUTranscoderConfig)
    )
    cfg = cfg_cls(d_in=6, d_sae=10, d_out=5, apply_b_dec_to_input=False)
    cfg.metadata.hook_name, cfg.metadata.hook_name_out = "blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out"
    theirs = cls(cfg)
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_()
        theirs.threshold.abs_()
    theirs.eval()
    theirs.save_model(str(tmp_path))
    ours = read_transcoder(tmp_path)
    assert (ours.W_skip is not None) == skip
    x = torch.randn(7, 6)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)


def test_save_and_read_round_trip(tmp_path, tc):
    save_transcoder(tc, tmp_path / "a", {"model_name": "test"})
    again = read_transcoder(tmp_path / "a")
    torch.testing.assert_close(again.W_enc, tc.W_enc)  # already float16-representable: exact
    skip = Transcoder(tc.W_enc[:, :8], tc.b_enc[:8], tc.W_dec[:8], tc.b_dec, tc.threshold[:8], W_skip=torch.eye(128))
    save_transcoder(skip, tmp_path / "b", dtype=torch.float32)
    x = torch.randn(3, 128)
    torch.testing.assert_close(read_transcoder(tmp_path / "b")(x), skip(x))
    assert json.loads((tmp_path / "b" / "cfg.json").read_text())["architecture"] == "jumprelu_skip_transcoder"


def test_bad_folders_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_transcoder(tmp_path)
    lm.save_sae(lm.load_sae(device="cpu"), tmp_path / "sae")
    with pytest.raises(ValueError, match="not a transcoder"):
        read_transcoder(tmp_path / "sae")
    with pytest.raises(ValueError, match="inconsistent"):
        Transcoder(torch.zeros(4, 3), torch.zeros(3), torch.zeros(3, 5), torch.zeros(4))


@pytest.mark.slow
def test_training_script_runs_end_to_end(tmp_path):
    """A smoke run of `python -m tools.train_transcoder` (a few steps on a small buffer) writes a folder that
    loads, with a manifest that records its settings and hashes."""
    from tools.train_transcoder import main

    main(["--steps", "3", "--n-seq", "300", "--d-sae", "64", "--k", "4", "--out", str(tmp_path)])
    tc = load_transcoder(tmp_path, device="cpu")
    recorded = manifest(tmp_path)
    assert tc.d_sae == recorded["d_sae"] == 64 and tc.W_skip is not None
    assert recorded["metrics_on_shipped_eval_tokens"]["ce_clean"] == pytest.approx(
        manifest()["metrics_on_shipped_eval_tokens"]["ce_clean"]
    )
