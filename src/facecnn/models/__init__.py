"""Model registry, the seeds' CNNs, heads, initializers and freeze policies."""

from facecnn.models.classifier import Classifier
from facecnn.models.registry import (count_parameters, create_model, list_models, model_info,
                                     register_model)

__all__ = ["Classifier", "count_parameters", "create_model", "list_models", "model_info",
           "register_model"]
