"""A logistic model of answerability, stored as a small JSON file (no pickles).

The model gives each candidate sentence the probability that it contains the answer; the reply
declines when even the best is below ``threshold``. Which sentence leads the reply is a second
question, answered by a second weight vector over the same standardised signals (``lead_weights``):
fitted to pick the answering sentence among one question's candidates, it is not pulled by the
signals that only tell answerable questions from unanswerable ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.answering.signals import FEATURES

BUNDLED = Path(__file__).with_name("answerability.json")


@dataclass(frozen=True)
class AnswerabilityModel:
    """Standardised logistic regression: p = sigmoid(bias + weights . (x - mean) / scale)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    # Answer when the best candidate's probability reaches this; show a further passage when its
    # best sentence reaches ``extra_threshold``.
    threshold: float
    extra_threshold: float
    info: dict
    # Weights of the lead score (higher leads); None: lead with the most probable sentence.
    lead_weights: np.ndarray | None = None

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """Probability per row of signal values (columns in :data:`FEATURES` order)."""
        if len(rows) == 0:
            return np.zeros(0)
        z = self.bias + ((rows - self.mean) / self.scale) @ self.weights
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def lead_scores(self, rows: np.ndarray) -> np.ndarray:
        """Per row, how strongly that sentence should lead the reply; comparable within one question only."""
        if len(rows) == 0:
            return np.zeros(0)
        weights = self.weights if self.lead_weights is None else self.lead_weights
        return ((rows - self.mean) / self.scale) @ weights

    def to_json(self) -> dict:
        """The model as plain JSON data."""
        return {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 6) for v in self.weights],
            **({} if self.lead_weights is None else {"lead_weights": [round(float(v), 6) for v in self.lead_weights]}),
            "bias": round(float(self.bias), 6),
            "threshold": round(float(self.threshold), 6),
            "extra_threshold": round(float(self.extra_threshold), 6),
            "info": self.info,
        }

    def save(self, path: Path) -> None:
        """Write the model as JSON."""
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path | None = None) -> AnswerabilityModel:
        """Read a model written by :meth:`save` (default: the one shipped with Bron).

        Raises ValueError naming what is wrong when the file is not such a model.
        """
        path = path or BUNDLED
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            features = tuple(data["features"])
            arrays = [np.asarray(data[k], dtype="float64") for k in ("mean", "scale", "weights")]
            bias, threshold = float(data["bias"]), float(data["threshold"])
            extra = float(data.get("extra_threshold", threshold))
            lead = np.asarray(data["lead_weights"], dtype="float64") if "lead_weights" in data else None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not an answerability model ({err})") from None
        if features != FEATURES:
            raise ValueError(f"{path}: fitted for signals {list(features)}, this Bron computes {list(FEATURES)}; refit it with `bron calibrate`")
        if any(a.shape != (len(FEATURES),) or not np.all(np.isfinite(a)) for a in arrays + ([] if lead is None else [lead])) or np.any(arrays[1] <= 0):
            raise ValueError(f"{path}: mean, scale, weights and lead_weights must be {len(FEATURES)} finite numbers (scale > 0)")
        if not all(math.isfinite(v) for v in (bias, threshold, extra)) or not 0 < threshold < 1 or not 0 < extra < 1:
            raise ValueError(f"{path}: bias must be finite and thresholds between 0 and 1")
        return cls(features, arrays[0], arrays[1], arrays[2], bias, threshold, extra, dict(data.get("info", {})), lead)
