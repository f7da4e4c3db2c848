"""Face and portrait: a photo in; the face found in it out — its box, 478 dense landmarks, the
working crop and output geometry, and the warp mesh over the face. Also the built-in sample portraits."""
