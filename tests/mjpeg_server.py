"""A tiny MJPEG-over-HTTP camera on 127.0.0.1 (multipart/x-mixed-replace), like an IP camera."""
from __future__ import annotations

import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


class MjpegCamera:
    """Serves ``frames`` JPEG frames at ``fps`` to a client, then closes the connection; after
    ``connections`` clients it answers 503, like a camera that went offline."""

    def __init__(self, frames: int = 50, fps: float = 50.0, size=(160, 120), connections: int = 1):
        self.frames, self.fps, self.size = frames, fps, size
        self.connections_left = connections
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if camera.connections_left <= 0:
                    self.send_error(503, "camera offline")
                    return
                camera.connections_left -= 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                w, h = camera.size
                try:
                    for i in range(camera.frames):
                        image = np.full((h, w, 3), 40, np.uint8)
                        cv2.rectangle(image, (5 + i % (w - 30), 30), (25 + i % (w - 30), 70), (255, 255, 255), -1)
                        jpeg = cv2.imencode(".jpg", image)[1].tobytes()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         + f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                        time.sleep(1.0 / camera.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def serve_video(video: str, port: int, fps: float) -> None:
    """Serve the frames of ``video`` for ever, looped, at ``fps`` to every client, on
    ``http://127.0.0.1:PORT/stream.mjpg`` (a process of its own that a test can kill or SIGSTOP)."""
    cap = cv2.VideoCapture(video)
    jpegs = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
    if not jpegs:
        raise SystemExit(f"no frames in {video}")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            start = time.monotonic()
            try:
                for i in itertools.count():
                    jpeg = jpegs[i % len(jpegs)]
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                     + f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                    time.sleep(max(0.0, start + (i + 1) / fps - time.monotonic()))
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="an MJPEG camera on 127.0.0.1 serving a looped video")
    parser.add_argument("video")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fps", type=float, default=25.0)
    args = parser.parse_args()
    serve_video(args.video, args.port, args.fps)
