"""Every rejected input raises rhythm.Error (a ValueError) with the library's message and errc, and
leaves the inputs and the assigner as they were."""
import pytest
import torch

import rhythm
from batches import make_batch


def clones(batch):
    return {k: v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)}


def assert_raises(errc, fragment, call):
    with pytest.raises(rhythm.Error) as caught:
        call()
    assert isinstance(caught.value, ValueError)
    assert caught.value.errc == errc, str(caught.value)
    assert fragment in str(caught.value), str(caught.value)


def with_nan(t, at):
    t = t.clone()
    t[at] = float("nan")
    return t


BAD_CALLS = {
    "rewards of the wrong size": ("shape_mismatch", "argument 'rewards'", dict(rewards=lambda b: b["rewards"][:-1])),
    "group ids of the wrong dtype": ("bad_tensor", "argument 'group_ids'", dict(group_ids=lambda b: b["group_ids"].int())),
    "k of another dtype": ("bad_tensor", "argument 'k'", dict(k=lambda b: b["k"].half())),
    "Hq not a multiple of Hkv": ("shape_mismatch", "argument 'k'", dict(k=lambda b: b["k"][:, :3])),
    "q of rank 3": ("bad_tensor", "argument 'q'", dict(q=lambda b: b["q"][0])),
    "q in float64": ("bad_tensor", "argument 'q'", dict(q=lambda b: b["q"].double(), k=lambda b: b["k"].double())),
    "NaN in q": ("non_finite", "argument 'q'", dict(q=lambda b: with_nan(b["q"], (1, 2, 40, 3)))),
    "NaN in rewards": ("non_finite", "argument 'rewards'", dict(rewards=lambda b: with_nan(b["rewards"], 2))),
    "two response runs": ("bad_segment", "response_mask",
                          dict(response_mask=lambda b: b["response_mask"].index_fill(1, torch.tensor([50]), False))),
    "mask of the wrong length": ("bad_tensor", "argument 'response_mask'",
                                 dict(response_mask=lambda b: b["response_mask"][:, :-1])),
    "segments beyond N": ("bad_segment", "segments", dict(response_mask=lambda b: None,
                                                          segments=lambda b: torch.tensor([[0, 10, 97]] * 8))),
    "neither q nor attentions": ("bad_tensor", "expected either q and k or maps", dict(q=lambda b: None, k=lambda b: None)),
    "entropy policy without entropies": ("bad_tensor", "entropies", dict(_policy="entropy")),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_call(case):
    errc, fragment, changes = BAD_CALLS[case]
    batch = make_batch()
    policy = changes.get("_policy", "coupled_rhythm")
    for key, change in changes.items():
        if not key.startswith("_"):
            batch[key] = change(batch)
    batch = {k: v for k, v in batch.items() if v is not None}
    before = clones(batch)
    credit = rhythm.CreditAssigner(policy=policy)
    assert_raises(errc, fragment, lambda: credit(**batch))
    for key, value in before.items():
        torch.testing.assert_close(batch[key], value, rtol=0, atol=0, equal_nan=True, msg=f"{key} was changed")
    # the assigner still works
    good = make_batch()
    if policy == "entropy":
        good["entropies"] = torch.rand(good["q"].shape[0], good["q"].shape[2])
    assert credit(**good).gamma.shape == good["response_mask"].shape


BAD_PARAMETERS = {
    "window": (dict(window=0), "params.signals.window"),
    "horizon": (dict(horizon=(20, 10)), "params.signals.horizon.hi"),
    "horizon lo": (dict(horizon=(-1, 10)), "params.signals.horizon.lo"),
    "q": (dict(q=0.0), "params.selection.q"),
    "head_fraction": (dict(head_fraction=1.5), "params.groups.fraction"),
    "dominance_window": (dict(dominance_window=0), "params.dominance"),
    "dominance_threshold": (dict(dominance_threshold="median"), "dominance_threshold"),
    "advantage_epsilon": (dict(advantage_epsilon=0.0), "params.advantages.epsilon"),
    "sign": (dict(sign="plus"), "argument 'sign'"),
    "floor": (dict(floor=-1.0), "params.shaping.floor"),
    "policy": (dict(policy="rhythm"), "argument 'policy'"),
    "gamma_amp": (dict(gamma_amp=float("nan")), "gamma_amp"),
}


@pytest.mark.parametrize("name", sorted(BAD_PARAMETERS))
def test_bad_parameter_at_construction(name):
    config, fragment = BAD_PARAMETERS[name]
    assert_raises("bad_parameter", fragment, lambda: rhythm.CreditAssigner(**config))


def test_threads_and_types():
    assert_raises("bad_parameter", "argument 'threads'", lambda: rhythm.CreditAssigner(threads=-1))
    batch = make_batch()
    segments = rhythm.segments_from_masks(batch["response_mask"])
    assert_raises("bad_parameter", "argument 'threads'",
                  lambda: rhythm.head_signals(batch["q"], batch["k"], segments, threads=-2))
    with pytest.raises(TypeError):
        rhythm.CreditAssigner(window="ten")
    with pytest.raises(TypeError, match="argument 'horizon'"):
        rhythm.CreditAssigner(horizon=10)
    with pytest.raises(TypeError):
        rhythm.CreditAssigner(horizon=(10.5, 100))
    with pytest.raises(TypeError, match="argument 'q': expected a torch.Tensor, got list"):
        rhythm.CreditAssigner()(q=[1, 2], k=batch["k"], response_mask=batch["response_mask"],
                                rewards=batch["rewards"], group_ids=batch["group_ids"])
    assert_raises("bad_tensor", "argument 'segments'", lambda: rhythm.head_signals(batch["q"], batch["k"],
                                                                                   [[0, 1, 2], [3, 4]]))
    assert_raises("bad_tensor", "argument 'attentions'",
                  lambda: rhythm.head_signals_from_maps([], [[0, 1, 2]]))


class Wrapper(torch.Tensor):
    """A __torch_dispatch__ subclass that wraps another tensor (as DTensor does): no data of its own."""

    @staticmethod
    def __new__(cls, inner):
        return torch.Tensor._make_wrapper_subclass(cls, inner.shape, strides=inner.stride(), dtype=inner.dtype,
                                                   device=inner.device)

    def __init__(self, inner):
        self.inner = inner

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        unwrap = lambda x: x.inner if isinstance(x, Wrapper) else x
        return func(*[unwrap(a) for a in args], **{k: unwrap(v) for k, v in (kwargs or {}).items()})


def test_tensors_without_data_are_rejected():
    batch = make_batch()
    segments = rhythm.segments_from_masks(batch["response_mask"])
    assert_raises("bad_tensor", "without storage", lambda: rhythm.head_signals(Wrapper(batch["q"]), batch["k"], segments))
    assert_raises("bad_tensor", "without storage",
                  lambda: rhythm.CreditAssigner()(**{**batch, "q": Wrapper(batch["q"])}))


def test_signals_and_loss_errors():
    batch = make_batch()
    segments = rhythm.segments_from_masks(batch["response_mask"])
    assert_raises("bad_parameter", "params.window", lambda: rhythm.head_signals(batch["q"], batch["k"], segments, 0))
    assert_raises("bad_tensor", "argument 'segments'",
                  lambda: rhythm.head_signals(batch["q"], batch["k"], segments[:, :2]))
    assert_raises("shape_mismatch", "segments", lambda: rhythm.head_signals(batch["q"], batch["k"], segments[:3]))
    maps = torch.rand(2, 2, 8, 8)
    assert_raises("bad_segment", "segments", lambda: rhythm.head_signals_from_maps(maps, [(0, 4, 9), (0, 1, 8)]))
    logp = torch.zeros(2, 8, requires_grad=True)
    assert_raises("bad_tensor", "either response_mask or segments",
                  lambda: rhythm.ppo_clip_loss(logp, torch.zeros(2, 8), torch.zeros(2, 8)))
    assert_raises("bad_tensor", "a bool or integer mask",
                  lambda: rhythm.ppo_clip_loss(logp, torch.zeros(2, 8), torch.zeros(2, 8), torch.ones(2, 8)))
    assert_raises("bad_segment", "segments",
                  lambda: rhythm.ppo_clip_loss(logp, torch.zeros(2, 8), torch.zeros(2, 8), segments=[(0, 2, 9)] * 2))
    assert_raises("bad_tensor", "argument 'logp_old'",
                  lambda: rhythm.ppo_clip_loss(logp, torch.zeros(2, 7), torch.zeros(2, 8), torch.ones(2, 8).bool()))
    assert_raises("bad_parameter", "epsilon",
                  lambda: rhythm.ppo_clip_loss(logp, torch.zeros(2, 8), torch.zeros(2, 8), torch.ones(2, 8).bool(),
                                               epsilon=2.0))
    assert_raises("bad_parameter", "aggregation",
                  lambda: rhythm.ppo_clip_loss(logp, torch.zeros(2, 8), torch.zeros(2, 8), torch.ones(2, 8).bool(),
                                               aggregation="mean"))
    assert logp.grad is None
