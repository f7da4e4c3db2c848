"""Motion: audio features and the phonetic track in; one motion vector per video frame out (mouth,
expression, blinks, head pose), sampled by few-step diffusion window by window, smoothed and put on
the output clock."""
