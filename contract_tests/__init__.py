"""Contract tests for fal-ai/wan-25-preview/image-to-image: one suite, run against fal-mock or the real API (see README.md)."""
