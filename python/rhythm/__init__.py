"""rhythm: structure-aware credit assignment for RL of language models, on PyTorch tensors.

rhythm measures, per token of a reasoning trace, how far back the model's local heads look (WAAD)
and how much later tokens attend to it through its global heads (FAI), marks preplan and anchor
tokens, and reweights the GRPO advantage there. It reads post-RoPE Q and K of a few layers (or
attention maps) and never builds an N x N map on the Q/K path. Every computation is the C++
library's (rhythm._C, built from its headers and LibTorch adapter); this package maps arguments.

    import rhythm
    credit = rhythm.CreditAssigner(policy="coupled_rhythm")            # once
    with rhythm.qk_hook(model, layers=[10, 11]) as capture:             # every step
        model(input_ids)                                                # teacher-forced pass
    out = credit(q=capture.q, k=capture.k, response_mask=mask, rewards=rewards, group_ids=group_ids)
    loss = rhythm.ppo_clip_loss(logp_new, logp_old, out.shaped_advantages, mask).loss

Shapes: B sequences, H heads of the chosen layers stacked on the head axis, N positions, d head dim.
q, k and attention maps may be float32, bfloat16 or float16 with any strides and are read in place
(no copy); masks, 16-bit entropies and Python lists are converted. Outputs are float32. CPU tensors run on the CPU backend with `threads` threads (0: torch.get_num_threads());
results do not depend on the thread count. CUDA tensors run rhythm's CUDA backend on torch's
current stream where the module was built with it (rhythm.cuda_kernels; RHYTHM_PYTHON_CUDA=1 at
install), and are otherwise copied to the host and the results back.

Errors: every rejected tensor or value raises rhythm.Error (a ValueError) whose message names the
argument, what was expected and what was given, and whose `errc` attribute is the library's error
code: 'shape_mismatch', 'bad_stride', 'bad_segment', 'bad_parameter', 'non_finite', 'aliasing', or
'bad_tensor' for the checks of a tensor itself (given, strided, with data, rank, dtype, device).
Where the core checks a parameter, the message names its C++ field (e.g. 'params.signals.window'
for `window`). An argument of the wrong Python type (a list where a tensor is expected, a float
where an int is) raises TypeError.
"""
from __future__ import annotations

import operator
from typing import Dict, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from . import _C
from ._hooks import QKCapture, qk_hook

__all__ = ["Error", "cuda_kernels", "CreditAssigner", "CreditResult", "HeadSignals", "PPOLoss", "POLICIES", "head_signals",
           "head_signals_from_maps", "segments_from_masks", "ppo_clip_loss", "qk_hook", "QKCapture"]
__version__: str = _C.version

cuda_kernels: bool = _C.cuda_kernels
"""Whether this build runs CUDA tensors on rhythm's CUDA backend (RHYTHM_PYTHON_CUDA=1 at install);
otherwise they are copied to the host and the results back."""

Error = _C.Error
"""The library's error: a ValueError with `errc`, the error code's name (see the module docstring)."""

POLICIES: Tuple[str, ...] = _C.policies
"""The built-in shaping policies (DESIGN §3): gamma per response token from its preplan/anchor roles,
plus the `random` and `entropy` controls."""

Horizon = Tuple[int, Optional[int]]
SegmentsLike = Union[torch.Tensor, Sequence[Sequence[int]]]


class CreditResult(NamedTuple):
    """What CreditAssigner returns, on the device of q (or attentions)."""

    gamma: torch.Tensor
    """[B, N] float32: credit factor per token (1 outside responses)."""
    shaped_advantages: torch.Tensor
    """[B, N] float32: gamma_t * A_b at response tokens, 0 elsewhere (the per-token PPO advantage)."""
    diagnostics: Dict[str, torch.Tensor]
    """0-d int64 counts 'response_tokens', 'preplan', 'anchor', 'dominated', 'intro'; 0-d float64
    'mean_gamma', 'amplified_share'; 'advantages' [B] float32 (GRPO A_b); 'flags' [B, N] uint8 (bits
    preplan 1, anchor 2, dominated 4, intro 8); 'waad', 'fai' [B, N] float32 (local-group WAAD,
    global-group FAI); 'head_spans' [B, H] float32; 'head_roles' [B, H] uint8 (local 1, global 2)."""


class HeadSignals(NamedTuple):
    """Per-head signals, float32: span [B, H], waad [B, H, N], fai [B, H, N]."""

    span: torch.Tensor
    waad: torch.Tensor
    fai: torch.Tensor


class PPOLoss(NamedTuple):
    """The PPO-clip loss (differentiable in logp_new) and what a trainer logs."""

    loss: torch.Tensor
    clip_fraction: float
    mean_ratio: float
    tokens: int


def _error(errc: str, argument: str, expected: str, given: str) -> Error:
    """A rhythm.Error in the library's format, for the checks this layer makes itself."""
    error = Error(f"rhythm: argument '{argument}': expected {expected}, got {given}")
    error.errc = errc
    return error


def _tensor(name: str, value: object, optional: bool = True) -> Optional[torch.Tensor]:
    """`value` if it is a tensor (or None where allowed); TypeError naming the argument otherwise."""
    if isinstance(value, torch.Tensor) or (optional and value is None):
        return value
    raise TypeError(f"rhythm: argument '{name}': expected a torch.Tensor, got {type(value).__name__}")


def _horizon(horizon: Horizon) -> Tuple[int, Optional[int]]:
    if not isinstance(horizon, (tuple, list)) or len(horizon) != 2:
        raise TypeError(f"rhythm: argument 'horizon': expected (H_lo, H_hi) with H_hi None for unbounded, "
                        f"got {horizon!r}")
    lo, hi = horizon
    return operator.index(lo), None if hi is None else operator.index(hi)


def _segments(segments: SegmentsLike) -> torch.Tensor:
    if isinstance(segments, torch.Tensor):
        return segments
    try:
        tensor = torch.tensor(segments, dtype=torch.int64)
    except (TypeError, ValueError, RuntimeError):
        raise _error("bad_tensor", "segments", "a [B, 3] int64 tensor or a sequence of (begin, response_begin, end)",
                     repr(segments)[:80]) from None
    return tensor.reshape(0, 3) if tensor.numel() == 0 else tensor


def _stacked(attentions: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
    # a Hugging Face `outputs.attentions` tuple (one [B, H, N, N] per layer) stacks on the head axis (a copy)
    if isinstance(attentions, torch.Tensor):
        return attentions
    maps = [_tensor("attentions", m, optional=False) for m in attentions]
    if not maps:
        raise _error("bad_tensor", "attentions", "a tensor [B, H, N, N] or a non-empty sequence of them", "[]")
    return torch.cat(maps, dim=1)


def _from_config(config: Dict[str, object]) -> "CreditAssigner":
    return CreditAssigner(**config)  # type: ignore[arg-type]


class CreditAssigner:
    """The whole credit chain of one GRPO step: per-head signals, head groups, preplan and anchor
    tokens, GRPO advantages, gamma and shaped advantages (rhythm::torch::credit_assigner).

    Configured once, called every step; its buffers are reused across calls. Parameters (DESIGN §3):

    window            W of WAAD: attention distances are clipped at W (>= 1)
    horizon           (H_lo, H_hi) of FAI: receivers t in [s + H_lo, s + H_hi]; H_hi None: unbounded.
                      Tokens with fewer than H_lo positions after them cannot be anchors.
    q                 share of eligible response tokens in T_loc and T_glob (and drawn by `random`,
                      selected by `entropy`), in (0, 1]
    policy            one of POLICIES
    gamma_amp         gamma of amplified tokens (every policy but uniform)
    alpha             coupled_rhythm: weight of the dominated anchors' intro tokens
    seed              random: the draw's seed (settable between calls: `credit.seed = step`)
    bottom            ablation: select the bottom q instead of the top q
    head_fraction     f: share of heads in the local and in the global group, in (0, 1]
    pooled_groups     rank heads over the batch instead of per sequence
    dominance_window  k: an anchor looks back at the jumps of [t - k, t - 1]
    dominance_threshold  'loc_threshold' (the T_loc threshold) or 'median_delta'
    std_normalise     divide by the group's std (False: Dr. GRPO, centre only)
    advantage_epsilon added to the group's std
    sign              shape 'both' signs of advantage, or only 'positive' or 'negative' ones
    floor             lower bound on gamma (0: none)
    mean_preserving   rescale each shaped response to mean gamma 1
    scale             Q/K path softmax scale of q.k (0: 1/sqrt(d))
    check_finite      reject NaN/Inf in the inputs
    threads           CPU threads (0: torch.get_num_threads())

    Every parameter is checked here (rhythm.Error, errc 'bad_parameter').
    Cost on the Q/K path: about one causal attention forward of the chosen layers' response rows
    (O(B H N^2 d) multiply-adds) plus O(B H N max(W - 1, H_hi) d) for the FAI band (O(B H N^2 d)
    with H_hi None); memory O(B H N) beyond the inputs.
    """

    def __init__(self, window: int = 10, horizon: Horizon = (10, 100), q: float = 0.4,
                 policy: str = "coupled_rhythm", *, gamma_amp: float = 1.5, alpha: float = 0.5, seed: int = 0,
                 bottom: bool = False, head_fraction: float = 0.3, pooled_groups: bool = False,
                 dominance_window: int = 3, dominance_threshold: str = "loc_threshold", std_normalise: bool = True,
                 advantage_epsilon: float = 1e-6, sign: str = "both", floor: float = 0.0,
                 mean_preserving: bool = False, scale: float = 0.0, check_finite: bool = True, threads: int = 0):
        self._config = dict(policy=policy, gamma_amp=gamma_amp, alpha=alpha, seed=seed, window=window,
                            horizon=_horizon(horizon), q=q, bottom=bottom, head_fraction=head_fraction,
                            pooled_groups=pooled_groups, dominance_window=dominance_window,
                            dominance_threshold=dominance_threshold, std_normalise=std_normalise,
                            advantage_epsilon=advantage_epsilon, sign=sign, floor=floor,
                            mean_preserving=mean_preserving, scale=scale, check_finite=check_finite,
                            threads=threads)
        self._assigner = _C.CreditAssigner(**self._config)

    @property
    def config(self) -> Dict[str, object]:
        """The parameters this assigner was made with (a copy)."""
        return dict(self._config)

    @property
    def seed(self) -> int:
        """The `random` policy's seed; set it between calls to draw new tokens every step."""
        return int(self._config["seed"])  # type: ignore[call-overload]

    @seed.setter
    def seed(self, value: int) -> None:
        self._assigner.set_seed(int(value))
        self._config["seed"] = int(value)

    def __reduce__(self):  # copy, deepcopy and pickle rebuild from the parameters
        return _from_config, (self.config,)

    def __repr__(self) -> str:
        return "rhythm.CreditAssigner(" + ", ".join(f"{k}={v!r}" for k, v in self._config.items()) + ")"

    def __call__(self, *, q: Optional[torch.Tensor] = None, k: Optional[torch.Tensor] = None,
                 attentions: Union[torch.Tensor, Sequence[torch.Tensor], None] = None,
                 response_mask: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                 segments: Optional[SegmentsLike] = None,
                 rewards: Union[torch.Tensor, Sequence[float]], group_ids: Union[torch.Tensor, Sequence[int]],
                 entropies: Optional[torch.Tensor] = None) -> CreditResult:
        """gamma, shaped advantages and diagnostics of one batch.

        q               [B, Hq, N, d] post-RoPE queries of the chosen layers (heads stacked)
        k               [B, Hkv, N, d] post-RoPE keys, Hq % Hkv == 0, the dtype of q
        attentions      [B, H, N, N] attention maps (or a sequence of them, stacked on the head
                        axis: a copy), instead of q and k
        response_mask   [B, N] bool or integer, nonzero at response tokens (one run per row)
        attention_mask  [B, N] bool or integer, optional: nonzero at real tokens (left padding)
        segments        [B, 3] int64 rows (begin, response_begin, end), instead of the masks
        rewards         [B] float32 verifier rewards (a list is converted)
        group_ids       [B] int64: equal ids form a GRPO group (a list is converted)
        entropies       [B, N] float32/bfloat16/float16 token entropies (the `entropy` policy)
        """
        for name, value in (("q", q), ("k", k), ("response_mask", response_mask), ("attention_mask", attention_mask),
                            ("entropies", entropies)):
            _tensor(name, value)
        if attentions is not None:
            attentions = _stacked(attentions)
        if segments is not None:
            segments = _segments(segments)
        if not isinstance(rewards, torch.Tensor):
            rewards = torch.as_tensor(rewards, dtype=torch.float32)
        if not isinstance(group_ids, torch.Tensor):
            group_ids = torch.as_tensor(group_ids, dtype=torch.int64)
        out = self._assigner(q=q, k=k, maps=attentions, response_mask=response_mask, attention_mask=attention_mask,
                             segments=segments, rewards=rewards, group_ids=group_ids, entropies=entropies)
        return CreditResult(out["gamma"], out["shaped_advantages"], out["diagnostics"])


def head_signals(q: torch.Tensor, k: torch.Tensor, segments: SegmentsLike, window: int = 10,
                 horizon: Horizon = (10, 100), *, scale: float = 0.0, check_finite: bool = True,
                 threads: int = 0) -> HeadSignals:
    """Span, WAAD and FAI of every query head from post-RoPE q [B, Hq, N, d] and k [B, Hkv, N, d]
    (one dtype: float32, bfloat16 or float16; Hq % Hkv == 0) without an N x N map: an online-softmax
    pass over each response row's keys, then a band of max(W - 1, H_hi) keys. segments: [B, 3]
    int64 (see segments_from_masks)."""
    _tensor("q", q, optional=False)
    _tensor("k", k, optional=False)
    return HeadSignals(*_C.head_signals_from_qk(q, k, _segments(segments), window, _horizon(horizon), scale,
                                                check_finite, threads))


def head_signals_from_maps(attentions: Union[torch.Tensor, Sequence[torch.Tensor]], segments: SegmentsLike,
                           window: int = 10, horizon: Horizon = (10, 100), *, check_finite: bool = True,
                           threads: int = 0) -> HeadSignals:
    """Span, WAAD and FAI of every head from attention maps [B, H, N, N] (rows are softmax
    distributions; float32, bfloat16 or float16), one read of each map. O(B H N^2) time."""
    return HeadSignals(*_C.head_signals_from_maps(_stacked(attentions), _segments(segments), window,
                                                  _horizon(horizon), check_finite, threads))


def segments_from_masks(response_mask: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The [B, 3] int64 CPU tensor of segments (begin, response_begin, end) of a response mask [B, N]
    (one contiguous run per row) and an optional attention mask (left padding). A row without a
    response gets an empty one after its real tokens. rhythm.Error 'bad_segment' for masks that are
    not one run."""
    return _C.segments_from_masks(_tensor("response_mask", response_mask, optional=False),
                                  _tensor("attention_mask", attention_mask))


def ppo_clip_loss(logp_new: torch.Tensor, logp_old: torch.Tensor, shaped_advantages: torch.Tensor,
                  response_mask: Optional[torch.Tensor] = None, *, segments: Optional[SegmentsLike] = None,
                  epsilon: float = 0.2, epsilon_high: float = 0.2, aggregation: str = "seq_mean_token_mean") -> PPOLoss:
    """PPO-clip loss -J over response tokens, differentiable in logp_new (torch ops, any device).

    rho_t = exp(logp_new_t - logp_old_t); J_t = min(rho_t A_t, clamp(rho_t, 1 - epsilon,
    1 + epsilon_high) A_t). aggregation: 'seq_mean_token_mean' (mean over sequences of their token
    mean) or 'token_mean' (mean over the batch's response tokens). logp_new, logp_old,
    shaped_advantages: [B, N] floating. The response positions: response_mask [B, N] (bool or
    integer, nonzero = response), or segments [B, 3] (int64 rows begin, response_begin, end).
    Positions outside responses are never read into the loss (they may hold NaN) and get zero
    gradient. logp_old and shaped_advantages are not differentiated."""
    for name, value in (("logp_new", logp_new), ("logp_old", logp_old), ("shaped_advantages", shaped_advantages),
                        ("response_mask", response_mask)):
        _tensor(name, value, optional=name == "response_mask")
    loss, clip_fraction, mean_ratio, tokens = _C.ppo_clip_loss(
        logp_new, logp_old, shaped_advantages, response_mask, None if segments is None else _segments(segments),
        epsilon, epsilon_high, aggregation)
    return PPOLoss(loss, clip_fraction, mean_ratio, tokens)
