"""Proofs for part 5 after the fresh25 measurement: W_dec.norm(-1) (-1 taken as p, not dim), generate_batch's
.squeeze() without dim (caught by a batch_size=1 call), dead latents judged on a slice of the window, and
resample_advanced's direction b_dec - h (negated)."""

from __future__ import annotations

import inspect
import textwrap

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def test_norm_p_positional():
    class PNorm(P.ToySAE):
        @property
        def W_dec_normalized(self):
            return self.W_dec / (self.W_dec.norm(-1, keepdim=True) + self.cfg.weight_normalize_eps)

    failure = assert_fails(checks.test_W_dec_normalized, PNorm, "norm_p_positional")
    assert "a positional -1 is p, not dim" in failure.hint and "W / eps" in failure.hint


def test_generate_batch_squeezed():
    class Squeezed(P.ToySAE):
        def generate_batch(self, batch_size):
            return (self.model.W @ self.model.generate_batch(batch_size)[..., None]).squeeze()

    failure = assert_fails(checks.test_generate_batch, Squeezed, "squeezed")
    assert "batch" in failure.message


def _from_solution(name: str, old: str, new: str):
    source = textwrap.dedent(inspect.getsource(getattr(P, name)))
    assert old in source
    namespace = dict(vars(P))
    exec(source.replace(old, new), namespace)
    return namespace[name]


def test_dead_on_last_half_of_window():
    impl = _from_solution(
        "resample_simple",
        "(frac_active_in_window <= 0)",
        "(frac_active_in_window[frac_active_in_window.shape[0] // 2 :] <= 0)",
    )
    failure = assert_fails(checks.test_resample_simple, impl, "window_slice")
    assert "only the last m steps" in failure.message and "12" in failure.message


def test_direction_negated():
    impl = _from_solution("resample_advanced", "h[picked, inst] - sae.b_dec[inst]", "sae.b_dec[inst] - h[picked, inst]")
    failure = assert_fails(checks.test_resample_advanced, impl, "direction_negated")
    assert "b_dec - h" in failure.hint
