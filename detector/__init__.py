"""Frames -> detections: YOLO-style Keras models, NMS, appearance embeddings, Darknet import
(training and evaluation apart, in :mod:`detector.training`).

Importing this package sets TensorFlow's environment defaults before TensorFlow loads:
quiet C++ logs, and oneDNN kernels on every x86 CPU. TensorFlow enables oneDNN by itself
only on CPUs with AVX-512 VNNI/BF16/AMX; on this project's AVX2 machines it doubles
depthwise-convolution models (Yolo-Fastest 1.1 at 416x416, batch 8, 2 threads: 46.9 frames/s
before, 91-99 after, bench/detector.py). Set ``TF_ENABLE_ONEDNN_OPTS=0`` to get TensorFlow's
Eigen kernels back.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
