"""The ComfyUI nodes: thin wrappers over ``vssflow_core``. Each stage's module adds its classes here."""

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
