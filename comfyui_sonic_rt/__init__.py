"""sonic-rt's ComfyUI custom-node package: the nodes live in ``sonic_rt.comfyui``, preset workflows in
``example_workflows/`` (ComfyUI's template browser lists them). sonic-rt must be installed in
ComfyUI's Python environment (torch 2.13.0 first, then ``pip install /path/to/sonic-rt``): see
README.md here."""

try:
    from sonic_rt.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
except ModuleNotFoundError as err:
    if err.name != "sonic_rt":
        raise
    raise ModuleNotFoundError(
        "sonic-rt's ComfyUI nodes need the sonic-rt package in ComfyUI's Python environment: run "
        "`pip install torch==2.13.0 && pip install /path/to/sonic-rt` with that Python (see "
        "comfyui_sonic_rt/README.md)",
        name="sonic_rt",
    ) from err

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
