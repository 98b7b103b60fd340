"""Warm-start study (paper section 5.3): image-classification data, models and training loops."""
