"""Proof and numbers: verify (two backends on the same inputs), eval (mIoU on labelled data), bench, tune, and the
report pages each of them writes."""
