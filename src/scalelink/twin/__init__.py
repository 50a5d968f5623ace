"""ScaleLink digital twin: an ensemble Kalman filter keeping an FE² model of a part up to date
with sensor data, and model-predictive control of the part's loading.

* :mod:`~scalelink.twin.enkf` — the exact Kalman filter and the ensemble Kalman filter
  (stochastic and square-root analyses, inflation, Gaspari–Cohn localisation), numpy only;
* :mod:`~scalelink.twin.ensemble` — ensemble members spread over MPI ranks, failed members
  dropped with a warning;
* :mod:`~scalelink.twin.core` — :class:`DigitalTwin`, forecasts and asynchronous (also late)
  observations in time order;
* :mod:`~scalelink.twin.plate` — the forecast model: a dolfinx FE² viscoelastic composite plate
  with a closed-form laminate micro model whose fibre stiffness is part of the state;
* :mod:`~scalelink.twin.control` — a step-response model identified from the twin and a
  model-predictive controller of the applied load under a stress limit.

Public names are imported on first use, so ``import scalelink.twin`` loads neither dolfinx nor
mpi4py (see ``docs/twin.md``).
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
EXPORTS = {
    "AnalysisRecord": "enkf",
    "EnsembleKalmanFilter": "enkf",
    "KalmanFilter": "enkf",
    "Localisation": "enkf",
    "Observation": "enkf",
    "chi2_band": "enkf",
    "gaspari_cohn": "enkf",
    "nees": "enkf",
    "random_walk_steady_variance": "enkf",
    "DistributedEnsemble": "ensemble",
    "DroppedMember": "ensemble",
    "EnsembleError": "ensemble",
    "MemberModel": "ensemble",
    "MemberWarning": "ensemble",
    "DigitalTwin": "core",
    "Sample": "core",
    "TimedRecord": "core",
    "ControlPlan": "control",
    "PredictiveController": "control",
    "StepResponse": "control",
    "StepResponseFamily": "control",
    "identify_step_response": "control",
    "CompositePlate": "plate",
    "LaminateMicro": "plate",
    "PlateMembers": "plate",
    "PlateSpec": "plate",
    "default_fibre_fraction": "plate",
    "pod_basis": "plate",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
