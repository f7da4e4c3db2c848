"""Training the motion model: data (tracked videos, synthetic speech), targets and the loop."""
