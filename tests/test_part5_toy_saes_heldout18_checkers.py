"""Proofs for part 5's diagnoses added after the fresh38 held-out measurement: L_reconstruction as the error's norm
divided by d_in (not the mean squared error), and the loss weighting L_sparsity by sparsity_coeff ** 2."""

from __future__ import annotations

import inspect
import textwrap

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _sae_with(old: str, new: str) -> type:
    source = textwrap.dedent(inspect.getsource(P.ToySAE.forward))
    assert old in source
    namespace = dict(vars(P))
    exec(source.replace(old, new), namespace)
    return type("Slipped", (P.ToySAE,), {"forward": namespace["forward"]})


def test_reconstruction_norm_over_d_in_is_named():
    cls = _sae_with(
        '"L_reconstruction": (h_reconstructed - h).pow(2).mean(-1)',
        '"L_reconstruction": (h_reconstructed - h).norm(dim=-1) / h.shape[-1]',
    )
    err = assert_fails(checks.test_forward, cls, "rec_norm_over_d_in")
    assert "SQUARED" in err.hint


def test_coeff_squared_is_named():
    cls = _sae_with("self.sparsity_coeff * loss_dict", "self.sparsity_coeff**2 * loss_dict")
    err = assert_fails(checks.test_forward, cls, "coeff_squared")
    assert "sparsity_coeff ** 2" in err.hint
