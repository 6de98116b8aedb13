"""The module's results equal the C++ adapter's on the same tensors, bit for bit (CPU)."""
import pytest
import torch

import rhythm
from batches import make_batch, softmax_maps

DEFAULTS = dict(policy="coupled_rhythm", gamma_amp=1.5, alpha=0.5, seed=0, window=10, horizon=(10, 100), q=0.4,
                bottom=False, head_fraction=0.3, pooled_groups=False, dominance_window=3,
                dominance_threshold="loc_threshold", std_normalise=True, advantage_epsilon=1e-6, sign="both",
                floor=0.0, mean_preserving=False, scale=0.0, check_finite=True, threads=0)


def assert_identical(python, cpp_results, keys):
    assert "error" not in cpp_results, cpp_results.get("error")
    for key in keys:
        a, b = python[key], cpp_results[key]
        assert a.dtype == b.dtype and a.shape == b.shape, key
        assert torch.equal(a, b), f"{key}: max |difference| {(a.double() - b.double()).abs().max()}"


def as_case(params):
    """The case keys of CreditAssigner's parameters: 'share' for q (the name of the q tensor)."""
    return {("share" if key == "q" else key): value for key, value in params.items()}


def credit_both(cpp, batch, **config):
    """The Python CreditAssigner and the C++ credit_assigner on `batch` with `config` over DEFAULTS."""
    params = {**DEFAULTS, **config}
    out = rhythm.CreditAssigner(**params)(**batch)
    python = {"gamma": out.gamma, "shaped_advantages": out.shaped_advantages,
              **{"diagnostics." + k: v for k, v in out.diagnostics.items()}}
    return python, cpp("credit", **as_case(params), **batch)


CREDIT_KEYS = ["gamma", "shaped_advantages"] + ["diagnostics." + k for k in (
    "response_tokens", "preplan", "anchor", "dominated", "intro", "mean_gamma", "amplified_share", "advantages",
    "flags", "waad", "fai", "head_spans", "head_roles")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("layout", ["contiguous", "permuted"])
def test_credit_from_qk(cpp, dtype, layout):
    python, reference = credit_both(cpp, make_batch(dtype=dtype, layout=layout))
    assert_identical(python, reference, CREDIT_KEYS)
    assert int(python["diagnostics.anchor"]) > 0 and int(python["diagnostics.preplan"]) > 0


@pytest.mark.parametrize("policy", rhythm.POLICIES)
def test_every_policy(cpp, policy):
    batch = make_batch(seed=3)
    g = torch.Generator().manual_seed(4)
    batch["entropies"] = torch.rand(batch["q"].shape[0], batch["q"].shape[2], generator=g).to(torch.bfloat16)
    python, reference = credit_both(cpp, batch, policy=policy, seed=17, gamma_amp=2.0, alpha=0.25)
    assert_identical(python, reference, CREDIT_KEYS)


def test_options_and_parameters(cpp):
    config = dict(window=6, horizon=(4, None), q=0.3, bottom=True, head_fraction=0.5, pooled_groups=True,
                  dominance_window=2, dominance_threshold="median_delta", std_normalise=False,
                  advantage_epsilon=1e-3, sign="positive", floor=0.9, mean_preserving=True, scale=0.2, threads=1)
    python, reference = credit_both(cpp, make_batch(seed=5), **config)
    assert_identical(python, reference, CREDIT_KEYS)


def test_from_maps_segments_and_attention_mask(cpp):
    batch = make_batch(seed=6, N=64)
    maps = softmax_maps(batch.pop("q"), batch.pop("k"))
    segments = rhythm.segments_from_masks(batch["response_mask"])
    for inputs in (dict(attentions=maps, response_mask=batch["response_mask"]),
                   dict(attentions=maps.to(torch.float16), segments=segments),
                   dict(attentions=maps, response_mask=batch["response_mask"],
                        attention_mask=torch.ones_like(batch["response_mask"]))):
        python, reference = credit_both(cpp, {**inputs, "rewards": batch["rewards"], "group_ids": batch["group_ids"]})
        assert_identical(python, reference, CREDIT_KEYS)


def test_left_padded_rows(cpp):
    batch = make_batch(seed=10, N=80)
    position, b = torch.arange(80)[None, :], torch.arange(8)[:, None]
    attention_mask = (position >= 3 * b).to(torch.int64)  # row b: 3b pad tokens on the left
    response_mask = (position >= 3 * b + 20) & (position < 80 - 2 * b)
    attention_mask = attention_mask * (position < 80 - 2 * b)  # and right padding after the response
    batch.update(response_mask=response_mask, attention_mask=attention_mask)
    python, reference = credit_both(cpp, batch)
    assert_identical(python, reference, CREDIT_KEYS)
    segments = rhythm.segments_from_masks(response_mask, attention_mask)
    assert segments[2].tolist() == [6, 26, 76]


def test_length_zero():
    batch = make_batch(N=0)
    out = rhythm.CreditAssigner()(**batch)
    assert out.gamma.shape == (8, 0) and int(out.diagnostics["response_tokens"]) == 0
    assert float(out.diagnostics["mean_gamma"]) == 1.0


def test_seed_copy_and_pickle():
    import copy
    import pickle
    batch = make_batch(seed=11)
    credit = rhythm.CreditAssigner(policy="random", seed=1)
    first = credit(**batch).gamma
    credit.seed = 2
    assert credit.seed == 2 and not torch.equal(credit(**batch).gamma, first)
    for clone in (copy.copy(credit), copy.deepcopy(credit), pickle.loads(pickle.dumps(credit))):
        assert clone.config == credit.config and clone._assigner is not credit._assigner
        assert torch.equal(clone(**batch).gamma, credit(**batch).gamma)


def test_ppo_masks_and_segments_are_one_thing():
    g = torch.Generator().manual_seed(12)
    logp_old = -torch.rand(4, 3, generator=g)
    logp_new = logp_old + 0.1 * torch.randn(4, 3, generator=g)
    shaped = torch.randn(4, 3, generator=g)
    mask = torch.tensor([[0, 1, 1]] * 4)  # int64 [B, N] with N = 3: a mask, not segments
    by_mask = rhythm.ppo_clip_loss(logp_new, logp_old, shaped, mask)
    by_bool = rhythm.ppo_clip_loss(logp_new, logp_old, shaped, mask.bool())
    by_segments = rhythm.ppo_clip_loss(logp_new, logp_old, shaped, segments=[(0, 1, 3)] * 4)
    assert by_mask.tokens == by_bool.tokens == by_segments.tokens == 8
    assert torch.equal(by_mask.loss, by_bool.loss) and torch.equal(by_mask.loss, by_segments.loss)


def test_head_signals(cpp):
    batch = make_batch(seed=7, dtype=torch.bfloat16, layout="permuted")
    segments = rhythm.segments_from_masks(batch["response_mask"])
    common = dict(segments=segments, window=8, horizon=(5, 40), check_finite=True, threads=2)
    python = rhythm.head_signals(batch["q"], batch["k"], segments, 8, (5, 40), threads=2)._asdict()
    reference = cpp("head_signals_from_qk", q=batch["q"], k=batch["k"], scale=0.0, **common)
    assert_identical(python, reference, ["span", "waad", "fai"])
    maps = softmax_maps(batch["q"], batch["k"])
    python = rhythm.head_signals_from_maps(maps, segments, 8, (5, 40), threads=2)._asdict()
    reference = cpp("head_signals_from_maps", attentions=maps, scale=0.0, **common)
    assert_identical(python, reference, ["span", "waad", "fai"])


@pytest.mark.parametrize("aggregation", ["seq_mean_token_mean", "token_mean"])
def test_ppo_clip_loss_and_gradient(cpp, aggregation):
    g = torch.Generator().manual_seed(8)
    B, N = 6, 40
    logp_old = -3 * torch.rand(B, N, generator=g)
    logp_new = (logp_old + 0.3 * torch.randn(B, N, generator=g)).requires_grad_()
    shaped = torch.randn(B, N, generator=g)
    mask = torch.rand(B, N, generator=g) > 0.3
    out = rhythm.ppo_clip_loss(logp_new, logp_old, shaped, mask, epsilon=0.1, epsilon_high=0.3,
                               aggregation=aggregation)
    out.loss.backward()
    reference = cpp("ppo_clip_loss", logp_new=logp_new.detach(), logp_old=logp_old, shaped_advantages=shaped,
                    response=mask, epsilon=0.1, epsilon_high=0.3, aggregation=aggregation)
    assert_identical({"loss": out.loss.detach(), "grad": logp_new.grad}, reference, ["loss", "grad"])
    assert out.clip_fraction == float(reference["clip_fraction"]) and 0 < out.clip_fraction < 1
    assert out.mean_ratio == float(reference["mean_ratio"]) and out.tokens == int(reference["tokens"])


def test_errors_agree(cpp):
    batch = make_batch(seed=9)
    batch["rewards"] = batch["rewards"][:-1]
    with pytest.raises(rhythm.Error) as python:
        rhythm.CreditAssigner()(**batch)
    reference = cpp("credit", **as_case(DEFAULTS), **batch)
    assert str(python.value) == reference["error"] and python.value.errc == reference["errc"] == "shape_mismatch"
