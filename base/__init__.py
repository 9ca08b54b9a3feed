"""The base layer: what crosses the seams between stages (frame and detections types, MOT
files), user-facing errors, and where models live. Imports nothing of vidtrack's own."""
