"""Bridge between our multi-instance toy SAEs and SAELens (`sae_lens` 6).

Two jobs:

* **Export.** `to_saelens(sae, inst)` turns one instance of a toy SAE into an inference SAELens SAE with
  the same maths; `export_to_saelens` writes it in SAELens's on-disk format (with `utils.saelens_format`,
  the one writer of that format here) and `load_saelens` reads it back (via SAELens's `SAE.load_from_disk`).
* **Synthetic data.** `synthetic_setup` wraps *our* feature directions and feature sampler in SAELens's
  synthetic-data classes, so that `train_saelens_sae` (SAELens's `train_toy_sae`) and
  `synthetic_eval_table` (SAELens's `eval_sae_on_synthetic_data`) can train and score SAELens's own
  architectures and our exported toy SAEs on exactly the same data.

What a toy SAE must provide (duck typing; this module imports no section code). Every tensor has a
leading `inst` axis; the architecture comes from the class attribute `SAELENS_ARCHITECTURE` or the
`architecture=` argument:

| architecture | attributes read |
| --- | --- |
| all | `W_enc [inst d_in d_sae]`, `W_dec_normalized [inst d_sae d_in]`, `b_enc [inst d_sae]`, `b_dec [inst d_in]` |
| `"gated"` | `r_mag, b_mag [inst d_sae]` (`b_enc` is the gate bias) |
| `"jumprelu"` | `log_threshold [inst d_sae]` (threshold = exp) |
| `"topk"` | `cfg.k` |
| `"batchtopk"`, `"matryoshka_batchtopk"` | `threshold [inst]` (the eval-mode threshold, one per instance) |

All of them encode `h - b_dec` (SAELens: `apply_b_dec_to_input=True`) and decode with unit-norm decoder
rows, so the decoder we export is always `W_dec_normalized`, never the raw parameter. BatchTopK and
Matryoshka SAEs run at inference as a JumpReLU whose threshold is the same for every latent; SAELens
saves its own BatchTopK / Matryoshka training SAEs that way, and so do we.

Typical use (one instance of a toy model and of a trained toy SAE, next to SAELens's own TopK):

    data = synthetic_setup_from_toy_model(model, inst=0)
    saes = {
        "ours": to_saelens(toy_sae, inst=0),
        "SAELens TopK": train_saelens_sae("topk", data, d_sae=5, k=1, steps=2_000, lr=1e-3),
    }
    synthetic_eval_table(saes, data)  # one row per SAE: MCC, uniqueness, L0, dead latents, ...

Devices follow the data: `to_saelens` keeps the toy SAE's device, the synthetic setup lives on the feature
vectors' device, and training runs there.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple
from unittest import mock

import pandas as pd
import torch
from jaxtyping import Float
from sae_lens import SAE
from sae_lens.registry import SAE_CLASS_REGISTRY, SAE_TRAINING_CLASS_REGISTRY
from sae_lens.saes.sae import SAEMetadata, TrainingSAE
from sae_lens.synthetic import (
    ActivationGenerator,
    ActivationsModifierInput,
    FeatureDictionary,
    eval_sae_on_synthetic_data,
    train_toy_sae,
)
from sae_lens.training import sae_trainer
from sae_lens.util import dtype_to_str
from torch import Tensor
from tqdm.auto import tqdm

from utils.saelens_format import CFG_FILE, read_sae_folder, write_sae_folder

# Our architecture name -> the SAELens architecture of its inference form.
INFERENCE_ARCHITECTURE: dict[str, str] = {
    "standard": "standard",
    "gated": "gated",
    "jumprelu": "jumprelu",
    "topk": "topk",
    "batchtopk": "jumprelu",  # a JumpReLU with one shared threshold, as SAELens saves BatchTopK
    "matryoshka_batchtopk": "jumprelu",  # same inference as BatchTopK
}


# ------------------------------------------------------------------------------------------------
# Export: toy SAE instance -> SAELens SAE
# ------------------------------------------------------------------------------------------------


def resolve_architecture(sae: Any, architecture: str | None = None) -> str:
    """The SAELens architecture name for `sae`: `architecture` if given, else `type(sae).SAELENS_ARCHITECTURE`."""
    name = architecture if architecture is not None else getattr(type(sae), "SAELENS_ARCHITECTURE", None)
    if name is None:
        raise ValueError(
            f"{type(sae).__name__} has no class attribute SAELENS_ARCHITECTURE; "
            f"pass architecture= (one of {sorted(INFERENCE_ARCHITECTURE)})"
        )
    if name not in INFERENCE_ARCHITECTURE:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(INFERENCE_ARCHITECTURE)}")
    return name


def _tensor(sae: Any, name: str, shape: tuple[int, ...], architecture: str) -> Tensor:
    """`sae.<name>` detached, checked to be a tensor of the given shape."""
    try:
        value = getattr(sae, name)
    except AttributeError:
        if isinstance(getattr(type(sae), name, None), property):
            raise  # the property exists but fails inside: show that error, not "missing"
        value = None
    if not isinstance(value, Tensor):
        found = "none" if value is None else f"a {type(value).__name__}"
        raise ValueError(
            f"a {architecture!r} SAE needs a tensor attribute `{name}` of shape {list(shape)}, "
            f"but this {type(sae).__name__} has {found}"
        )
    if tuple(value.shape) != shape:
        raise ValueError(f"`{name}` should have shape {list(shape)} for this SAE, got {list(value.shape)}")
    return value.detach()


def toy_sae_state(sae: Any, inst: int, architecture: str | None = None) -> tuple[str, dict[str, Tensor], dict]:
    """One instance's weights under SAELens's parameter names.

    Returns (SAELens inference architecture, state dict of [d_in d_sae] / [d_sae d_in] / [d_sae] / [d_in]
    tensors (detached clones), extra config fields such as `k`).
    """
    arch = resolve_architecture(sae, architecture)
    W_enc = getattr(sae, "W_enc", None)
    if not isinstance(W_enc, Tensor) or W_enc.ndim != 3:
        raise ValueError(f"expected a multi-instance toy SAE with W_enc [inst d_in d_sae], got {type(sae).__name__}")
    n_inst, d_in, d_sae = W_enc.shape
    if isinstance(inst, bool) or not isinstance(inst, int) or not 0 <= inst < n_inst:
        raise IndexError(f"inst={inst!r} is out of range: this SAE has {n_inst} instances (0 to {n_inst - 1})")

    per_latent = (n_inst, d_sae)
    state = {
        "W_enc": W_enc.detach()[inst],
        "W_dec": _tensor(sae, "W_dec_normalized", (n_inst, d_sae, d_in), arch)[inst],
        "b_dec": _tensor(sae, "b_dec", (n_inst, d_in), arch)[inst],
    }
    b_enc = _tensor(sae, "b_enc", per_latent, arch)[inst]
    extra_cfg: dict[str, Any] = {}
    if arch == "gated":
        state["b_gate"] = b_enc
        state["r_mag"] = _tensor(sae, "r_mag", per_latent, arch)[inst]
        state["b_mag"] = _tensor(sae, "b_mag", per_latent, arch)[inst]
    else:
        state["b_enc"] = b_enc
    if arch == "jumprelu":
        state["threshold"] = _tensor(sae, "log_threshold", per_latent, arch)[inst].exp()
    elif arch in ("batchtopk", "matryoshka_batchtopk"):
        state["threshold"] = _tensor(sae, "threshold", (n_inst,), arch)[inst].expand(d_sae)
    elif arch == "topk":
        k = getattr(getattr(sae, "cfg", None), "k", None)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d_sae:
            raise ValueError(f"a 'topk' SAE needs an int cfg.k in [1, d_sae={d_sae}], got {k!r}")
        # Our decoder rows are unit norm, so SAELens must not rescale activations by decoder norms.
        extra_cfg = {"k": k, "rescale_acts_by_decoder_norm": False}
    state = {name: t.clone().contiguous() for name, t in state.items()}
    return INFERENCE_ARCHITECTURE[arch], state, extra_cfg


def to_saelens(sae: Any, inst: int, architecture: str | None = None, device: str | torch.device | None = None) -> SAE:
    """Instance `inst` of a multi-instance toy SAE as an inference SAELens SAE (eval mode).

    The config is SAELens's own class for the architecture (StandardSAEConfig, GatedSAEConfig, ...), with
    d_in/d_sae from the weights, `apply_b_dec_to_input=True`, no activation normalisation, our dtype, and
    metadata naming the source (`toy_sae_class`, `toy_instance`, `training_architecture`). Weights are
    detached copies: training the toy SAE further does not change the result. `device=None` keeps the
    toy SAE's device.
    """
    arch = resolve_architecture(sae, architecture)
    inference_arch, state, extra_cfg = toy_sae_state(sae, inst, arch)
    device = torch.device(device) if device is not None else state["W_enc"].device
    sae_cls, cfg_cls = SAE_CLASS_REGISTRY[inference_arch]
    d_in, d_sae = state["W_enc"].shape
    cfg = cfg_cls(
        d_in=d_in,
        d_sae=d_sae,
        dtype=dtype_to_str(state["W_enc"].dtype),
        device=str(device),
        apply_b_dec_to_input=True,
        normalize_activations="none",
        metadata=SAEMetadata(training_architecture=arch, toy_sae_class=type(sae).__name__, toy_instance=inst),
        **extra_cfg,
    )
    out = sae_cls(cfg)
    out.load_state_dict({name: t.to(device) for name, t in state.items()}, strict=True)
    return out.eval()


def export_to_saelens(sae: Any, inst: int, path: str | Path, architecture: str | None = None) -> Path:
    """Write instance `inst` of `sae` to the folder `path` in SAELens's format (cfg.json + sae_weights.safetensors),
    with the repository's one writer of that format (`utils.saelens_format`). Returns the folder."""
    arch = resolve_architecture(sae, architecture)
    inference_arch, state, extra_cfg = toy_sae_state(sae, inst, arch)
    metadata = {"training_architecture": arch, "toy_sae_class": type(sae).__name__, "toy_instance": inst}
    return write_sae_folder(path, inference_arch, state, metadata, extra_cfg)


def load_saelens(path: str | Path, device: str | torch.device = "cpu") -> SAE:
    """Load an SAE saved in SAELens's format as an SAELens `SAE`, with SAELens's own loader
    (`SAE.load_from_disk`: safetensors, offline), after `utils.saelens_format.read_sae_folder` has checked the
    folder (clear errors for a missing file, bad JSON or an unknown architecture)."""
    cfg, _ = read_sae_folder(path)
    if cfg["architecture"] not in SAE_CLASS_REGISTRY:
        raise ValueError(f"{Path(path) / CFG_FILE} names no known SAELens architecture (got {cfg['architecture']!r})")
    return SAE.load_from_disk(Path(path), device=str(device))


# ------------------------------------------------------------------------------------------------
# Synthetic data: our features and sampler inside SAELens's synthetic toolkit
# ------------------------------------------------------------------------------------------------


class SampledActivationGenerator(ActivationGenerator):
    """A real SAELens `ActivationGenerator` whose feature activations come from our own sampler.

    `sample_fn(n)` must return non-negative feature activations [n num_features]. SAELens's modifiers
    (e.g. `sae_lens.synthetic.hierarchy_modifier(...)`) are applied on top, as in the parent class.
    `firing_probabilities` / `mean_firing_magnitudes` are only descriptive here (a hierarchy modifier that
    rescales children reads the magnitudes); when not given they are estimated from `n_probe` samples.
    """

    def __init__(
        self,
        sample_fn: Callable[[int], Float[Tensor, "n feats"]],
        num_features: int,
        *,
        firing_probabilities: Tensor | float | None = None,
        mean_firing_magnitudes: Tensor | float | None = None,
        modify_activations: ActivationsModifierInput = None,
        device: str | torch.device = "cpu",
        n_probe: int = 10_000,
    ) -> None:
        if firing_probabilities is None or mean_firing_magnitudes is None:
            probe = _checked_sample(sample_fn, n_probe, num_features).float()
            fired = (probe > 0).float().sum(0)
            if firing_probabilities is None:
                firing_probabilities = fired / n_probe
            if mean_firing_magnitudes is None:
                mean_firing_magnitudes = probe.sum(0) / fired.clamp(min=1)
        super().__init__(
            num_features,
            firing_probabilities=firing_probabilities,
            mean_firing_magnitudes=mean_firing_magnitudes,
            modify_activations=modify_activations,
            device=device,
        )
        self.sample_fn = sample_fn

    @torch.no_grad()
    def sample(self, batch_size: int) -> Float[Tensor, "n feats"]:
        acts = _checked_sample(self.sample_fn, batch_size, self.num_features).to(self.firing_probabilities)
        if self.modify_activations is not None:
            acts = self.modify_activations(acts, self).relu()
        return acts


def _checked_sample(sample_fn: Callable[[int], Tensor], batch_size: int, num_features: int) -> Tensor:
    acts = sample_fn(batch_size)
    if not isinstance(acts, Tensor) or tuple(acts.shape) != (batch_size, num_features):
        got = list(acts.shape) if isinstance(acts, Tensor) else type(acts).__name__
        raise ValueError(f"sample_fn({batch_size}) should return a tensor [{batch_size}, {num_features}], got {got}")
    return acts


def _same_device(a: torch.device, b: torch.device) -> bool:
    """`cuda` and `cuda:0` count as the same device."""
    a, b = torch.device(a), torch.device(b)
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


class SyntheticSetup(NamedTuple):
    """What SAELens's `train_toy_sae` and `eval_sae_on_synthetic_data` take: a feature dictionary and a generator."""

    feature_dict: FeatureDictionary
    activations_generator: ActivationGenerator

    @property
    def d_in(self) -> int:
        return self.feature_dict.hidden_dim

    @property
    def device(self) -> torch.device:
        return self.feature_dict.feature_vectors.device

    @torch.no_grad()
    def sample(self, batch_size: int) -> tuple[Float[Tensor, "n feats"], Float[Tensor, "n d_in"]]:
        """A batch of (feature activations, hidden activations = features @ feature_vectors + bias)."""
        feature_acts = self.activations_generator.sample(batch_size)
        return feature_acts, self.feature_dict(feature_acts)


def synthetic_setup(
    feature_vectors: Float[Tensor, "feats d_in"],
    sample: Callable[[int], Float[Tensor, "n feats"]] | ActivationGenerator,
    bias: Float[Tensor, " d_in"] | None = None,
    **generator_kwargs: Any,
) -> SyntheticSetup:
    """Our data in SAELens's synthetic classes.

    feature_vectors: the true feature directions, one per row, kept as they are (not normalised), so the
        hidden activations are exactly `feature_acts @ feature_vectors (+ bias)`.
    sample: `n -> feature activations [n feats]` (wrapped in `SampledActivationGenerator`, which takes
        `generator_kwargs`, e.g. `modify_activations=hierarchy_modifier(...)`), or a ready SAELens
        `ActivationGenerator` (e.g. one with SAELens's own hierarchy).
    """
    if not isinstance(feature_vectors, Tensor) or feature_vectors.ndim != 2:
        raise ValueError("feature_vectors should be a 2-D tensor [feats d_in]")
    n_feats, d_in = feature_vectors.shape
    device = feature_vectors.device
    feature_dict = FeatureDictionary(n_feats, d_in, bias=False, initializer=None, device=device)
    feature_dict.feature_vectors.data = feature_vectors.detach().float().clone()
    if bias is not None:
        if tuple(bias.shape) != (d_in,):
            raise ValueError(f"bias should have shape [{d_in}], got {list(bias.shape)}")
        feature_dict.bias.data = bias.detach().float().clone().to(device)
    feature_dict.requires_grad_(False).eval()
    if isinstance(sample, ActivationGenerator):
        if generator_kwargs:
            raise ValueError("generator_kwargs only apply when `sample` is a callable")
        if sample.num_features != n_feats:
            raise ValueError(f"the generator has {sample.num_features} features, feature_vectors has {n_feats}")
        generator = sample
    else:
        generator = SampledActivationGenerator(sample, n_feats, device=device, **generator_kwargs)
    return SyntheticSetup(feature_dict, generator)


def synthetic_setup_from_toy_model(model: Any, inst: int, **generator_kwargs: Any) -> SyntheticSetup:
    """One instance of a toy model (`W [inst d_hidden feats]`, `generate_batch(n) -> [n inst feats]`) as a setup.

    The feature dictionary is `W[inst]` transposed; samples are the model's own feature batches for that
    instance (a whole multi-instance batch is drawn and one instance kept; cheap for toy sizes).
    """
    W = model.W.detach()
    if not 0 <= inst < W.shape[0]:
        raise IndexError(f"inst={inst} is out of range for a model with {W.shape[0]} instances")
    return synthetic_setup(W[inst].T, lambda n: model.generate_batch(n)[:, inst], **generator_kwargs)


# ------------------------------------------------------------------------------------------------
# Training SAELens SAEs and the evaluation table
# ------------------------------------------------------------------------------------------------


def training_config_class(architecture: str) -> type:
    """SAELens's training config class for an architecture ("standard", "topk", "batchtopk", ...)."""
    if architecture not in SAE_TRAINING_CLASS_REGISTRY:
        raise ValueError(
            f"unknown SAELens training architecture {architecture!r}; known: {sorted(SAE_TRAINING_CLASS_REGISTRY)}"
        )
    return SAE_TRAINING_CLASS_REGISTRY[architecture][1]


def to_inference(sae: TrainingSAE) -> SAE:
    """A trained SAELens training SAE in its inference form, the way SAELens does it: `save_inference_model`
    then `SAE.load_from_disk` (BatchTopK / Matryoshka come back as JumpReLU, TopK with folded norms)."""
    with tempfile.TemporaryDirectory() as folder:
        sae.save_inference_model(folder)
        return SAE.load_from_disk(folder, device=str(sae.cfg.device)).eval()


def train_saelens_sae(
    architecture: str,
    data: SyntheticSetup,
    d_sae: int,
    *,
    steps: int = 3_000,
    batch_size: int = 1024,
    lr: float = 3e-4,
    k: float | None = None,
    matryoshka_widths: Sequence[int] | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    inference: bool = True,
    progress: bool = True,
    **cfg: Any,
) -> SAE:
    """Train one of SAELens's own SAEs on `data` with SAELens's `train_toy_sae` (Adam, constant lr).

    architecture: a SAELens training architecture ("standard", "topk", "batchtopk", "matryoshka_batchtopk",
        "jumprelu", "gated", ...). `k` is required by the TopK family, `matryoshka_widths` (increasing prefix
        sizes, the last = d_sae) by Matryoshka. Any other config field goes in `**cfg` (e.g. l1_coefficient).
    seed: seeds torch's global generator (initialisation and data) before building the SAE.
    Returns the inference form (eval mode) unless `inference=False`. `device=None` uses the data's device.
    """
    cfg_cls = training_config_class(architecture)
    field_names = {f.name for f in fields(cfg_cls)}
    device = torch.device(device) if device is not None else data.device
    if not _same_device(device, data.device):
        raise ValueError(f"the data live on {data.device} but training was asked on {device}")
    kwargs: dict[str, Any] = dict(
        d_in=data.d_in,
        d_sae=d_sae,
        dtype="float32",
        device=str(device),
        apply_b_dec_to_input=True,
        normalize_activations="none",
    )
    for name, value in (("k", k), ("matryoshka_widths", matryoshka_widths)):
        if value is None and name in field_names:
            raise ValueError(f"architecture {architecture!r} needs {name}=")
        if value is not None:
            if name not in field_names:
                raise ValueError(f"architecture {architecture!r} takes no {name}")
            kwargs[name] = list(value) if name == "matryoshka_widths" else value
    unknown = set(cfg) - field_names
    if unknown:
        raise ValueError(f"{cfg_cls.__name__} has no field(s) {sorted(unknown)}")
    kwargs.update(cfg)

    torch.manual_seed(seed)
    sae_cls = SAE_TRAINING_CLASS_REGISTRY[architecture][0]
    sae = sae_cls(cfg_cls(**kwargs))
    quiet = mock.patch.object(sae_trainer, "tqdm", partial(tqdm, disable=True)) if not progress else nullcontext()
    with quiet:
        train_toy_sae(
            sae,
            data.feature_dict,
            data.activations_generator,
            training_samples=steps * batch_size,
            batch_size=batch_size,
            lr=lr,
            device=str(device),
        )
    return to_inference(sae) if inference else sae.eval()


EVAL_COLUMNS = ["mcc", "uniqueness", "l0", "true_l0", "dead_latents", "shrinkage", "explained_variance", "f1"]


def synthetic_eval_table(
    saes: dict[str, SAE], data: SyntheticSetup, n_samples: int = 50_000, seed: int = 0
) -> pd.DataFrame:
    """Score several SAEs with SAELens's `eval_sae_on_synthetic_data`, every one on the same samples.

    One row per SAE (index = the dict's keys), columns:
      mcc: mean |cosine| of the best one-to-one matching between decoder rows and true features (1 = all found);
      uniqueness: distinct true features matched by the latents / number of latents (1 = no duplicates);
      l0, true_l0: mean active latents / active true features per sample;
      dead_latents: latents that never fired on the samples;
      shrinkage: mean |reconstruction| / |input| (1 = no shrinkage);
      explained_variance: R² of the reconstruction;
      f1: mean F1 of each latent as a detector of its best-matching feature.
    The generator is re-seeded with `seed` before each SAE, so all see identical data.
    """
    rows = {}
    for name, sae in saes.items():
        if sae.cfg.d_in != data.d_in:
            raise ValueError(f"SAE {name!r} has d_in={sae.cfg.d_in} but the data have d_in={data.d_in}")
        if not _same_device(sae.W_dec.device, data.device):
            raise ValueError(f"SAE {name!r} is on {sae.W_dec.device} but the data are on {data.device}")
        torch.manual_seed(seed)
        result = eval_sae_on_synthetic_data(sae, data.feature_dict, data.activations_generator, num_samples=n_samples)
        rows[name] = {
            "mcc": result.mcc,
            "uniqueness": result.uniqueness,
            "l0": result.sae_l0,
            "true_l0": result.true_l0,
            "dead_latents": result.dead_latents,
            "shrinkage": result.shrinkage,
            "explained_variance": result.explained_variance,
            "f1": result.classification.f1_score,
        }
    return pd.DataFrame.from_dict(rows, orient="index", columns=EVAL_COLUMNS)
