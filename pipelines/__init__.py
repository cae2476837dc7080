"""Inference for each tier (`tier2`, `tier3`) and what the tiers share (inputs, progress, video)."""
