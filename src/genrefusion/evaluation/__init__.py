"""Evaluation: window -> track aggregation, metrics, confusion matrices, reports and comparisons."""
