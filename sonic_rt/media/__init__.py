"""Media out: rendered frames and 16 kHz audio in; an MP4 that plays in browsers (H.264 + AAC) out,
written as they come."""
