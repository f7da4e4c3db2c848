"""Audio: any file ffmpeg reads, live PCM chunks, or text to speak in; out, on the 25 fps video
timeline, 16 kHz mono samples, log-mel features and the phonetic track (which mouth shape, every 10 ms).

The pipeline's timing constants are defined here, once, each derived from the others, so a rate
that does not divide evenly fails at import rather than drifting by a sample per frame.
"""


def exact_div(x: int, y: int) -> int:
    if x % y:
        raise ValueError(f"{x} is not a multiple of {y}")
    return x // y


SAMPLE_RATE = 16000  # Hz, everything after decoding
FPS = 25  # video frames per second
SAMPLES_PER_FRAME = exact_div(SAMPLE_RATE, FPS)  # 640 audio samples per video frame
HOP = 160  # 10 ms between mel frames
MELS_PER_FRAME = exact_div(SAMPLES_PER_FRAME, HOP)  # 4 mel frames per video frame
WIN = 400  # 25 ms analysis window
N_FFT = 512
N_MELS = 80
if not HOP <= WIN <= N_FFT:
    raise ValueError(f"need HOP <= WIN <= N_FFT, got {HOP}, {WIN}, {N_FFT}")
