"""Readers of the files models come in, without unpickling: Paddle programs and ``.pdiparams``, ``.pdparams`` weights,
and zoo's ONNX metadata."""
