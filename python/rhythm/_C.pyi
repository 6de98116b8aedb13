# Type stubs of the extension module rhythm._C (python/src/module.cpp). Use the package rhythm.
from typing import Dict, Optional, Tuple

import torch

version: str
cuda_kernels: bool
policies: Tuple[str, ...]

class Error(ValueError):
    errc: str

_Horizon = Tuple[int, Optional[int]]

class CreditAssigner:
    def __init__(self, policy: str, gamma_amp: float, alpha: float, seed: int, window: int, horizon: _Horizon,
                 q: float, bottom: bool, head_fraction: float, pooled_groups: bool, dominance_window: int,
                 dominance_threshold: str, std_normalise: bool, advantage_epsilon: float, sign: str, floor: float,
                 mean_preserving: bool, scale: float, check_finite: bool, threads: int) -> None: ...
    def __call__(self, *, q: Optional[torch.Tensor], k: Optional[torch.Tensor], maps: Optional[torch.Tensor],
                 response_mask: Optional[torch.Tensor], attention_mask: Optional[torch.Tensor],
                 segments: Optional[torch.Tensor], rewards: torch.Tensor, group_ids: torch.Tensor,
                 entropies: Optional[torch.Tensor]) -> Dict[str, object]: ...
    def time_per_call(self, q: torch.Tensor, k: torch.Tensor, response_mask: torch.Tensor, rewards: torch.Tensor,
                      group_ids: torch.Tensor, repeats: int) -> float: ...
    def set_seed(self, seed: int) -> None: ...

def head_signals_from_qk(q: torch.Tensor, k: torch.Tensor, segments: torch.Tensor, window: int, horizon: _Horizon,
                         scale: float, check_finite: bool, threads: int
                         ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...
def head_signals_from_maps(maps: torch.Tensor, segments: torch.Tensor, window: int, horizon: _Horizon,
                           check_finite: bool, threads: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...
def segments_from_masks(response_mask: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> torch.Tensor: ...
def ppo_clip_loss(logp_new: torch.Tensor, logp_old: torch.Tensor, shaped_advantages: torch.Tensor,
                  response_mask: Optional[torch.Tensor], segments: Optional[torch.Tensor], epsilon: float,
                  epsilon_high: float, aggregation: str) -> Tuple[torch.Tensor, float, float, int]: ...
