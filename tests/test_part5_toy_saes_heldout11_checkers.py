"""Proofs for part 5 after the fresh30 measurement: W_dec_normalized returning the rows' norms (+ eps) instead of the
normalised rows, and resample_advanced without the "1.0 if no latent is alive" fallback (NaN encoder columns on an
instance whose latents are all dead) or skipping such an instance."""

from __future__ import annotations

import inspect
import textwrap

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


def test_norms_returned():
    class Norms(P.ToySAE):
        @property
        def W_dec_normalized(self):
            return self.W_dec.norm(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps

    failure = assert_fails(checks.test_W_dec_normalized, Norms, "returned_norms")
    assert "you returned the rows' norms, not the rows divided by them" in failure.hint
    assert "‖row‖ + eps" in failure.message


def _from_solution(name: str, old: str, new: str):
    source = textwrap.dedent(inspect.getsource(getattr(P, name)))
    assert old in source
    namespace = dict(vars(P))
    exec(source.replace(old, new), namespace)
    return namespace[name]


def test_no_live_fallback():
    old = "scale = alive_norms.mean() if alive_norms.numel() > 0 else 1.0"
    no_fallback = _from_solution("resample_advanced", old, "scale = alive_norms.mean()")
    failure = assert_fails(checks.test_resample_advanced, no_fallback, "no_live_fallback")
    assert "an instance with no live latent: use 1.0 as the scale, as the docstring says" in failure.hint


def test_no_live_skipped():
    old = "if n_dead == 0 or weights.sum() <= 0:"
    skip = _from_solution("resample_advanced", old, "if n_dead == 0 or weights.sum() <= 0 or bool(dead[inst].all()):")
    assert_fails(checks.test_resample_advanced, skip, "no_live_skipped")


def test_fallback_solution_passes():
    assert_passes(checks.test_resample_advanced, P.resample_advanced)
