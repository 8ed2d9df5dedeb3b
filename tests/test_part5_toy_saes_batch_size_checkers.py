"""Proofs for part 5: resample_advanced must draw sae.generate_batch(batch_size) (a hard-coded size is named,
batch_size_ignored), and forward's centring folded into the encoder bias as b_enc − b_dec.sum(-1) is named
(b_dec_folded_as_sum) rather than reported as bare acts values."""

from __future__ import annotations

import inspect
import textwrap

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


def _edited(fn, *edits: tuple[str, str]):
    source = textwrap.dedent(inspect.getsource(fn))
    for old, new in edits:
        assert old in source
        source = source.replace(old, new)
    namespace = dict(vars(P))
    exec(source, namespace)
    return namespace[fn.__name__]


def test_batch_size_ignored_is_named():
    fixed = _edited(P.resample_advanced, ("sae.generate_batch(batch_size)", "sae.generate_batch(1024)"))
    failure = assert_fails(checks.test_resample_advanced, fixed, "batch_size_ignored")
    assert "generate_batch called with 1024, not batch_size = 400" in failure.message


def test_batch_size_as_keyword_passes():
    keyword = ("sae.generate_batch(batch_size)", "sae.generate_batch(batch_size=batch_size)")
    assert_passes(checks.test_resample_advanced, _edited(P.resample_advanced, keyword))


def test_resample_advanced_solution_passes():
    assert_passes(checks.test_resample_advanced, P.resample_advanced)


def test_b_dec_folded_as_sum_is_named():
    forward = _edited(
        P.ToySAE.forward,
        ("h_cent = h - self.b_dec", "h_cent = h"),
        ("F.relu(acts_pre + self.b_enc)", "F.relu(acts_pre + self.b_enc - self.b_dec.sum(-1, keepdim=True))"),
    )
    Folded = type("Folded", (P.ToySAE,), {"forward": forward})
    failure = assert_fails(checks.test_forward, Folded, "no_b_dec_subtraction+b_dec_folded_as_sum")
    assert "b_dec folded into b_enc as a sum" in failure.hint
    assert "(h − b_dec) @ W_enc = h @ W_enc − b_dec @ W_enc" in failure.hint


def test_forward_solution_passes():
    assert_passes(checks.test_forward, P.ToySAE)
