"""Reference KServe transformers of the data plane.

``pipeline_transformers.tokenizer``: text -> ``input_ids``/``attention_mask`` (v2 tensors) on
the way in, logits -> softmax -> top-k labels on the way out
(``python -m pipeline_transformers.tokenizer``). The codecs are in
``pipeline_transformers.codecs``.
"""
