"""A real RTSP server on 127.0.0.1 (GStreamer's gst-rtsp-server), like an IP camera.

Run with the system Python, which has the Debian bindings (``python3-gi``,
``gir1.2-gst-rtsp-server-1.0``), as a process of its own so a test can kill, restart or
SIGSTOP it::

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --size 640x360 --fps 25

serves ``rtsp://127.0.0.1:PORT/cam``: a live test pattern with a moving ball, H.264
(x264, zero latency, a key frame every second), shared by every client. It prints
``ready`` once it listens.
"""
from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = ("( videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate={fps}/1 "
            "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate={kbps} "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--kbps", type=int, default=1000)
    parser.add_argument("--path", default="/cam")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE.format(w=width, h=height, fps=args.fps, kbps=args.kbps))
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
