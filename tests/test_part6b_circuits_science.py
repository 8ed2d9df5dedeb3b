"""What section 6b claims about attribution graphs, tested on several prompts of the shipped model.

* Completeness: in the local replacement model, the edges into every latent and logit node plus its bias
  constant give back the node's value (up to float rounding), on several prompts.
* Agreement: gradient-injection edges equal a direct computation (zero one source, hold the others), and
  latent -> logit edges equal their closed formula.
* The local replacement model is the model at its own prompt; the replacement model plus its error term is
  the model everywhere.
* Structure of a one-layer graph: only the last position's latents reach the last position's logits.
* The given pruning, figure and dashboard behave as the notebook says (offline HTML, readable figure).
"""

from __future__ import annotations

import functools

import pytest
import torch

from solutions import part6b_circuits as sol
from utils import lm
from utils import part6b_circuits as circuits
from utils.transcoder import load_transcoder

PROMPTS = [
    "class Cache:\n    def __init__(",
    "    def __init__(self, name, size):\n        self.name = name\n        self.",
    "import os\nimport sys\n\n\ndef main():\n    args = sys.",
    "        for key, value in self.items():\n            if",
]


@pytest.fixture(scope="module")
def model():
    return lm.load_model(device="cpu")


@pytest.fixture(scope="module")
def tc():
    return load_transcoder(device="cpu")


@pytest.fixture(scope="module")
def graphs(model, tc):
    with torch.no_grad():
        return [sol.attribution_graph(model, tc, p) for p in PROMPTS]


def test_local_replacement_model_is_the_model_at_its_prompt(model, tc):
    with torch.no_grad():
        for prompt in PROMPTS:
            frozen = circuits.freeze(model, tc, model.to_tokens(prompt)[0])
            _, logits = sol.linearised_forward(model, tc, frozen, frozen.embeds)
            torch.testing.assert_close(logits, frozen.logits, rtol=1e-4, atol=1e-3)
            torch.testing.assert_close(frozen.logits, model(model.to_tokens(prompt))[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("i", range(len(PROMPTS)))
def test_completeness_on_several_prompts(model, tc, graphs, i):
    graph, frozen = graphs[i]
    with torch.no_grad():
        gap = circuits.completeness_gap(functools.partial(sol.linearised_forward, model, tc), frozen, graph)
    values = torch.cat([frozen.acts[graph.latent_pos, graph.latent_idx], frozen.logits[-1, graph.logit_ids]])
    assert graph.n_latents > 20 and len(gap) == graph.n_latents + len(graph.logit_ids)
    assert gap.abs().max() < 1e-4 * values.abs().max() + 1e-4, (
        f"completeness gap {gap.abs().max():.2e} on {PROMPTS[i]!r}"
    )


@pytest.mark.parametrize("i", range(len(PROMPTS)))
def test_edges_agree_with_a_direct_computation(model, tc, graphs, i):
    graph, frozen = graphs[i]
    A = graph.adjacency
    g = torch.Generator().manual_seed(i)
    targets = [graph.nodes("logit").start, graph.nodes("logit").start + 2]
    last = (graph.latent_pos == graph.n_pos - 1).nonzero().flatten()
    targets += last[torch.randint(len(last), (2,), generator=g)].tolist()
    targets += torch.randint(graph.n_latents, (2,), generator=g).tolist()
    sources = torch.randint(graph.nodes("logit").start, (12,), generator=g).tolist()
    sources += [graph.nodes("token").stop - 1, graph.nodes("error").stop - 1, int(last[0])]
    with torch.no_grad():
        for t in targets:
            for s in sources:
                direct = circuits.edge_by_ablation(
                    functools.partial(sol.linearised_forward, model, tc), frozen, graph, s, t
                )
                assert abs(float(A[t, s]) - direct) < 1e-3 * (abs(direct) + 1), (graph.label(s), graph.label(t))
        # The closed formula for latent -> logit edges: f · (W_dec - mean) · W_U[:, v] / final scale.
        logit = graph.nodes("logit").start
        idx = graph.latent_idx[last]
        formula = frozen.acts[-1, idx] * (
            (tc.W_dec[idx] - tc.W_dec[idx].mean(-1, keepdim=True)) @ model.W_U[:, graph.logit_ids[0]]
        )
        torch.testing.assert_close(A[logit, last], formula / frozen.final_scale[-1, 0], rtol=1e-3, atol=1e-4)


def test_only_the_last_positions_latents_reach_the_logits(graphs):
    for graph, _ in graphs:
        A = graph.adjacency
        earlier = (graph.latent_pos < graph.n_pos - 1).nonzero().flatten()
        assert A[graph.nodes("logit")][:, earlier].abs().max() == 0
        assert A[graph.nodes("logit")][:, graph.nodes("error").start : graph.nodes("error").stop - 1].abs().max() == 0
        influence = sol.node_influence(A, circuits.logit_weights(graph))
        assert influence[earlier].abs().max() < 1e-9
        assert influence[graph.nodes("logit")].abs().max() < 1e-9  # a node does not influence itself
        assert (influence[graph.nodes("token")] > 0).all()  # every token reaches the prediction, through attention


def test_influence_counts_two_step_paths(graphs):
    graph, _ = graphs[0]
    A = graph.adjacency
    w = circuits.logit_weights(graph)
    a_hat = A.abs() / A.abs().sum(-1, keepdim=True).clamp_min(1e-12)
    torch.testing.assert_close(sol.node_influence(A, w), w @ a_hat + w @ a_hat @ a_hat, rtol=1e-4, atol=1e-7)


def test_error_term_makes_the_replacement_model_exact(model, tc):
    tokens = lm.load_eval_tokens("cpu", n_seq=4)
    seen = {}
    with torch.no_grad():
        clean = model.run_with_hooks(
            tokens,
            fwd_hooks=[
                (tc.hook_name, lambda a, hook: seen.__setitem__("x", a)),
                (tc.hook_name_out, lambda a, hook: seen.__setitem__("y", a)),
            ],
        )
        error = seen["y"] - tc(seen["x"])
        patched = model.run_with_hooks(tokens, fwd_hooks=[(tc.hook_name_out, lambda a, hook: tc(seen["x"]) + error)])
    torch.testing.assert_close(patched, clean, rtol=1e-4, atol=1e-4)


def test_pruning_keeps_tokens_logits_and_at_most_max_nodes(graphs):
    for graph, _ in graphs:
        influence = sol.node_influence(graph.adjacency, circuits.logit_weights(graph))
        keep = circuits.prune(graph, influence, node_threshold=0.8, max_nodes=30)
        assert keep[graph.nodes("token")].all() and keep[graph.nodes("logit")].all()
        assert int(keep.sum()) <= max(30, graph.n_pos + len(graph.logit_ids))
        kept_latents = keep[graph.nodes("latent")].nonzero().flatten()
        assert (graph.latent_pos[kept_latents] == graph.n_pos - 1).all()


def test_graph_figure_is_readable(graphs):
    graph, _ = graphs[1]
    influence = sol.node_influence(graph.adjacency, circuits.logit_weights(graph))
    keep = circuits.prune(graph, influence)
    fig = circuits.plot_attribution_graph(graph, keep, influence, title="t", show=False)
    assert fig.layout.width <= 1000 and fig.layout.xaxis.title.text
    xs = [x for tr in fig.data for x in (tr.x or []) if x is not None]
    ys = [y for tr in fig.data for y in (tr.y or []) if y is not None]
    assert fig.layout.xaxis.range[0] <= min(xs) and max(xs) <= fig.layout.xaxis.range[1]
    assert fig.layout.yaxis.range[0] <= min(ys) and max(ys) <= fig.layout.yaxis.range[1]
    ticks = list(fig.layout.xaxis.ticktext)
    assert len(ticks) == graph.n_pos and all(t and t.strip() == t and " " not in t and "\n" not in t for t in ticks), (
        "whitespace in token labels must be made visible"
    )
    for tr in fig.data:
        if tr.mode == "lines":
            assert tr.line.width and tr.line.width > 0


def test_dashboard_html_is_offline_and_escaped(model, tc):
    tokens = model.to_tokens('x = "<b>" + y\n    return x\n')
    acts = torch.linspace(0, 1, tokens.shape[1])[None]
    groups = [("top", sol.top_activations(acts, 2)), ("band", sol.quantile_examples(acts, 1, 2)[0])]
    page = circuits.dashboard_html(
        3, acts, tokens, model.tokenizer, torch.randn(model.cfg.d_vocab), torch.randn(model.cfg.d_vocab), groups
    )
    assert "<script" not in page and "http" not in page
    assert "&lt;" in page and "<b>" not in page and "⏎" in page and "Latent #3" in page
