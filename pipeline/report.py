"""Human-readable summaries of a finished run."""
from __future__ import annotations

from pipeline.service import RunSummary


def format_summary(summary: RunSummary) -> str:
    lines = []
    for s in summary.streams.values():
        total = f"/{s.frames_total}" if s.frames_total else ""
        extra = f", dropped {s.dropped}" if s.dropped else ""
        extra += f", lost frames asked for again {s.resends} times" if s.resends else ""
        error = f", error: {s.error}" if s.error else ""
        lines.append(f"  {s.stream_id}: {s.frames_tracked}{total} frames tracked ({s.reason or 'no end marker'}"
                     f"{extra}{error})")
    fps = summary.frames / summary.elapsed_s if summary.elapsed_s else 0.0
    lines.append(f"  {summary.frames} frames in {summary.elapsed_s:.1f} s including start-up ({fps:.1f} frames/s); "
                 f"steady state {summary.steady_fps:.1f} frames/s")
    lines.extend(f"  {line}" for line in stage_lines(summary))
    if summary.restarts:
        lines.append("  restarts: " + ", ".join(f"{name} {n}" for name, n in sorted(summary.restarts.items())))
    if summary.stopped_by:
        lines.append(f"  stopped by {summary.stopped_by}")
    if summary.out_dir:
        lines.append(f"  outputs in {summary.out_dir}/")
    return "\n".join(lines)



def stage_lines(summary: RunSummary) -> list[str]:
    """One line per stage with its counts (every stage's bad messages, per reason)."""
    stages, d = summary.stages, summary.detector
    grabber, detector, tracker = (stages.get(name, {}) for name in ("grabber", "detector", "tracker"))
    lines = []
    if grabber:
        lines.append(f"grabbers: {grabber.get('frames_in', 0)} frames decoded, {grabber.get('frames_out', 0)} sent, "
                     f"{grabber.get('dropped', 0)} dropped, {grabber.get('decode_errors', 0)} decode errors")
    if detector or d.get("frames"):
        batches = f" in {int(d['batches'])} batches" if d.get("batches") else ""
        lines.append(f"detector: {int(d.get('frames', detector.get('frames_out', 0)))} frames{batches}, "
                     f"{int(d.get('detections', 0))} detections, {_bad_messages(detector)}")
    if tracker:
        lines.append(f"tracker: {tracker.get('frames_in', 0)} frames received, {tracker.get('frames_out', 0)} tracked, "
                     f"{tracker.get('skipped', 0)} skipped, {tracker.get('gap_resends', 0)} gaps asked for again, "
                     f"{_bad_messages(tracker)}")
    return lines


def _bad_messages(counts: dict) -> str:
    """"3 bad messages (malformed 2, duplicate 1)", or "0 bad messages"."""
    reasons = counts.get("bad_messages") or {}
    total = sum(reasons.values())
    detail = " (" + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())) + ")" if reasons else ""
    return f"{total} bad message{'' if total == 1 else 's'}{detail}"
