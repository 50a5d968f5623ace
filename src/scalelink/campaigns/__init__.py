"""ScaleLink campaigns: committees of potentials, active learning, exploration by MD, labelling.

Typical use::

    from scalelink.campaigns import LearnConfig, run_active_learning
"""

from __future__ import annotations

from .active_learning import LearnConfig, load_learn_config, run_active_learning
from .committee import CommitteeResult, train_committee
from .labelling import label_structures, make_labeller

__all__ = [
    "CommitteeResult",
    "LearnConfig",
    "label_structures",
    "load_learn_config",
    "make_labeller",
    "run_active_learning",
    "train_committee",
]
