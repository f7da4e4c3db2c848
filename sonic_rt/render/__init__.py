"""Rendering: a portrait's identity cache (built once at enrolment) and a motion vector in; an RGB
frame out — the warp mesh deformed and rasterised, the person layer moved over a still background
plate, the mouth interior painted, the frame's marks applied."""
