"""Human-readable summaries of a finished run."""
from __future__ import annotations

from pipeline.service import RunSummary


def format_summary(summary: RunSummary) -> str:
    lines = []
    for s in summary.streams.values():
        total = f"/{s.frames_total}" if s.frames_total else ""
        extra = f", dropped {s.dropped}" if s.dropped else ""
        error = f", error: {s.error}" if s.error else ""
        lines.append(f"  {s.stream_id}: {s.frames_tracked}{total} frames tracked ({s.reason or 'no end marker'}"
                     f"{extra}{error})")
    fps = summary.frames / summary.elapsed_s if summary.elapsed_s else 0.0
    lines.append(f"  {summary.frames} frames in {summary.elapsed_s:.1f} s including start-up ({fps:.1f} frames/s); "
                 f"steady state {summary.steady_fps:.1f} frames/s")
    d = summary.detector
    if d.get("frames"):
        lines.append(f"  detector: {int(d['frames'])} frames in {int(d.get('batches', 0))} batches, "
                     f"{int(d.get('detections', 0))} detections, {int(d.get('bad_messages', 0))} bad messages")
    if summary.stopped_by:
        lines.append(f"  stopped by {summary.stopped_by}")
    if summary.out_dir:
        lines.append(f"  outputs in {summary.out_dir}/")
    return "\n".join(lines)
