"""Browser tests (headless Chromium via playwright-core) against a real ComfyUI server."""
