"""A tiny MJPEG-over-HTTP camera on 127.0.0.1 (multipart/x-mixed-replace), like an IP camera."""
from __future__ import annotations

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
