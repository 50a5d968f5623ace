"""ScaleLink surrogates: constitutive networks (strain -> stress and tangent), their training
and export as constitutive model files for FE².

Typical use::

    from scalelink.surrogates import SurrogateConfig, train_surrogate, export_constitutive
"""

from __future__ import annotations

from .constitutive import ConstitutiveMLP, export_constitutive, load_samples
from .surrogate_trainer import SurrogateConfig, load_surrogate, train_surrogate

__all__ = [
    "ConstitutiveMLP",
    "SurrogateConfig",
    "export_constitutive",
    "load_samples",
    "load_surrogate",
    "train_surrogate",
]
