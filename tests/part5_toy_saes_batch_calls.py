"""resample_advanced: the batch size the learner's code asks sae.generate_batch for.

The checker's generate_batch draws whatever size it is asked for, so a resampler that ignores its batch_size
argument (a hard-coded generate_batch(1024), say) still gives right-looking latents. A spy on the checker's own SAE
records each size asked for; any other than batch_size is named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests import part5_toy_saes_resample_readbacks as RB
from tests.checking import fail


def called_with_batch_size(sae: Any, batch_size: int, run: Callable[[], Any], call: Callable[..., Any]) -> None:
    """Run `call(run)` (the checker's runner of the learner's resampler on `sae`) with sae.generate_batch spied on,
    then fail when it was asked for a size other than `batch_size`. The original generate_batch is restored."""
    inner = sae.generate_batch
    asked: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(args[0] if args else kwargs.get("batch_size", next(iter(kwargs.values()), None)))
        return inner(*args, **kwargs)

    sae.generate_batch = spy
    try:
        call(run)
    except IndexError as err:
        RB.latent_index_error(err, sae, batch_size)
        raise
    finally:
        sae.generate_batch = inner
    wrong = [n for n in asked if not _same(n, batch_size)]
    if wrong:
        sizes = ", ".join(dict.fromkeys(str(n) for n in wrong))
        fail(
            f"generate_batch called with {sizes}, not batch_size = {batch_size}",
            "draw the inputs with sae.generate_batch(batch_size): the batch size is the function's argument, "
            "not a fixed number",
            code="batch_size_ignored",
        )


def _same(n: Any, batch_size: int) -> bool:
    try:
        return int(n) == batch_size
    except (TypeError, ValueError):
        return False
