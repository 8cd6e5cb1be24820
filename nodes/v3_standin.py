"""A stand-in for the part of ComfyUI's V3 node API (``comfy_api.v0_0_2``: ``io`` and ``ComfyExtension``) that the
pack uses, so its node classes can be defined, inspected and run without ComfyUI (unit tests, scripts).

Same names and keyword arguments as the real API, and :meth:`ComfyNode.GET_NODE_INFO_V1` gives the ``/object_info``
shape ComfyUI builds from a schema (``input`` with its required and optional sections, ``input_order``, ``output``,
``output_name``, ...). The integration tests read the real server's definitions of the same nodes, so the two are
held to the same workflows. Only what the pack's nodes use is here.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


def _pruned(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


# Keyword arguments whose /object_info key differs from the argument name.
_V1_KEYS = {"force_input": "forceInput", "display_mode": "display", "raw_link": "rawLink",
            "dynamic_prompts": "dynamicPrompts"}


class _Input:
    io_type = ""

    def __init__(self, id: str, display_name: str | None = None, optional: bool = False, tooltip: str | None = None,
                 advanced: bool | None = None, **options: Any):
        self.id, self.display_name, self.optional, self.tooltip, self.advanced = (id, display_name, optional,
                                                                                 tooltip, advanced)
        self.options = options

    def get_io_type(self) -> str:
        return self.io_type

    def as_dict(self) -> dict:
        options = {}
        for name, value in self.options.items():
            if name == "upload" and value is not None:
                options[getattr(value, "value", value)] = True
            elif isinstance(value, Enum):
                options[_V1_KEYS.get(name, name)] = value.value
            else:
                options[_V1_KEYS.get(name, name)] = value
        return _pruned({"display_name": self.display_name, "tooltip": self.tooltip, "advanced": self.advanced,
                        **options})


class _ComboInput(_Input):
    def __init__(self, id: str, options: list | None = None, **kwargs: Any):
        super().__init__(id, **kwargs)
        self.options = {**self.options, "options": list(options or [])}


class _Output:
    io_type = ""

    def __init__(self, id: str | None = None, display_name: str | None = None, tooltip: str | None = None,
                 is_output_list: bool = False):
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name or id, tooltip, is_output_list


def _comfy_type(io_type: str, input_base: type = _Input) -> type:
    kind = type(io_type.title(), (), {"io_type": io_type})
    kind.Input = type("Input", (input_base,), {"io_type": io_type})
    kind.Output = type("Output", (_Output,), {"io_type": io_type})
    return kind


Boolean, Int, Float, String = (_comfy_type(t) for t in ("BOOLEAN", "INT", "FLOAT", "STRING"))
Combo = _comfy_type("COMBO", _ComboInput)
Image, Audio, Video = (_comfy_type(t) for t in ("IMAGE", "AUDIO", "VIDEO"))


def Custom(io_type: str) -> type:
    return _comfy_type(io_type)


class Hidden(str, Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"


class HiddenHolder:
    """The hidden inputs of one run (ComfyUI fills them on a per-run copy of the class); all None here."""

    def __init__(self, **values: Any):
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        return None


@dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    description: str = ""
    search_aliases: list = field(default_factory=list)
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    not_idempotent: bool = False

    def get_v1_info(self) -> dict:
        inputs: dict[str, dict] = {"required": {}}
        for item in self.inputs:
            inputs.setdefault("optional" if item.optional else "required", {})[item.id] = (item.get_io_type(),
                                                                                          item.as_dict())
        hidden = list(self.hidden)
        if self.is_output_node:  # as ComfyUI's Schema.finalize does
            hidden += [h for h in (Hidden.prompt, Hidden.extra_pnginfo) if h not in hidden]
        if hidden:
            inputs["hidden"] = {h.name: (h.value,) for h in hidden}
        return {
            "input": inputs, "input_order": {key: list(value) for key, value in inputs.items()},
            "output": [o.io_type for o in self.outputs],
            "output_is_list": [o.is_output_list for o in self.outputs],
            "output_name": [o.display_name or o.io_type for o in self.outputs],
            "output_tooltips": [o.tooltip for o in self.outputs],
            "name": self.node_id, "display_name": self.display_name, "category": self.category,
            "description": self.description, "output_node": self.is_output_node,
            "deprecated": self.is_deprecated, "experimental": self.is_experimental,
            "search_aliases": self.search_aliases or None,
        }


class NodeOutput:
    def __init__(self, *args: Any, ui: Any = None):
        self.args, self.ui = args, ui

    @property
    def result(self) -> tuple | None:
        return self.args if self.args else None

    def __getitem__(self, index: int) -> Any:
        return self.args[index]


class ComfyNode:
    hidden: Any = HiddenHolder()

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        return cls.define_schema()

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict:
        return cls.GET_SCHEMA().get_v1_info()


class ComfyExtension:
    async def on_load(self) -> None:
        pass

    async def get_node_list(self) -> list[type[ComfyNode]]:
        raise NotImplementedError


io = types.SimpleNamespace(**{name: globals()[name] for name in (
    "Boolean", "Int", "Float", "String", "Combo", "Image", "Audio", "Video", "Custom", "Hidden", "HiddenHolder",
    "Schema", "NodeOutput", "ComfyNode")})
