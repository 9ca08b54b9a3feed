"""Run a YOLO-style Keras detector on batches of BGR frames.

``Detector.load(path)`` accepts a ``.keras`` file whose graph ends in
:class:`detector.decode.YoloDecode` (anchors, input size and class names are read from that
layer), with any of vidtrack's custom layers (:mod:`detector.loading`).

``detect(images)`` letterboxes all images into one batch (padded to a fixed set of batch
sizes so the compiled graph is never retraced), runs the model once, scores boxes as
objectness x class probability (Darknet), keeps per-class candidates above
``conf_threshold``, runs class-aware NMS and maps boxes back to original pixels.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.letterbox import MODES, letterbox_uint8
from detector.nms import nms
from base.types import Detections
from base.errors import ModelError

BATCH_SIZES = (1, 2, 4, 8, 16)


def _find_decode(model):
    from detector.decode import YoloDecode

    found = [layer for layer in _walk_layers(model) if isinstance(layer, YoloDecode)]
    return found[-1] if found else None


def _walk_layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from _walk_layers(layer)


class Detector:
    """A loaded detector. Thread-compatible (one caller at a time)."""

    def __init__(self, predict_fn, input_size, class_names, conf_threshold=0.25, iou_threshold=0.45,
                 resize="letterbox", max_detections=300, model=None):
        if resize not in MODES:
            raise ValueError(f"resize must be one of {MODES}, got {resize!r}")
        self._predict_fn = predict_fn
        self._input_size = (int(input_size[0]), int(input_size[1]))
        self._class_names = list(class_names)
        self.conf_threshold = float(conf_threshold)
        self.iou_threshold = float(iou_threshold)
        self.resize = resize
        self.max_detections = int(max_detections)
        self.model = model  # the keras model (None where only a predict function is given)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path, conf_threshold=0.25, iou_threshold=0.45, resize="letterbox",
             max_detections=300, jit_compile=False) -> "Detector":
        """Load a ``.keras`` file; raises ModelError if it is missing or not a vidtrack detector."""
        from detector.loading import load_keras

        path = Path(path)
        if not path.exists():
            raise ModelError(f"model not found: {path}")
        if path.is_dir():
            raise ModelError(f"{path} is a folder, not a .keras model file")
        try:
            model = load_keras(path)
        except Exception as exc:  # keras raises many kinds for a bad file
            raise ModelError(f"cannot load model {path}: {exc.__class__.__name__}: {str(exc)[:200]}") from exc
        return cls.from_model(model, conf_threshold, iou_threshold, resize, max_detections, jit_compile,
                              source=str(path))

    @classmethod
    def from_model(cls, model, conf_threshold=0.25, iou_threshold=0.45, resize="letterbox",
                   max_detections=300, jit_compile=False, source="model") -> "Detector":
        """Wrap an in-memory Keras model whose graph ends in YoloDecode."""
        import tensorflow as tf

        decode = _find_decode(model)
        if decode is None:
            raise ModelError(f"{source}: no YoloDecode layer in the model graph")
        outputs = model.outputs if isinstance(model.outputs, (list, tuple)) else [model.outputs]
        if len(outputs) != 3:
            raise ModelError(f"{source}: expected 3 outputs (boxes, objectness, class_probs), got {len(outputs)}")
        h, w = decode.input_size

        @tf.function(jit_compile=jit_compile, reduce_retracing=False)
        def predict(x):
            boxes, obj, cls_p = model(x, training=False)
            return boxes, obj, cls_p

        if not jit_compile:
            predict = frozen_function(predict.get_concrete_function(tf.TensorSpec([None, h, w, 3], tf.float32)))
        return cls(predict, (h, w), decode.class_names, conf_threshold, iou_threshold, resize,
                   max_detections, model=model)

    # ------------------------------------------------------------------ properties
    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the network input in pixels."""
        return self._input_size

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    @property
    def num_classes(self) -> int:
        return len(self._class_names)

    # ------------------------------------------------------------------ inference
    def detect(self, images) -> list[Detections]:
        """Detect objects in each uint8[H,W,3] BGR image; one model call per <=16 images."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        images = list(images)
        results: list[Detections] = []
        for start in range(0, len(images), BATCH_SIZES[-1]):
            results.extend(self.detect_prepared(self.prepare(images[start:start + BATCH_SIZES[-1]])))
        return results

    def prepare(self, images) -> "PreparedBatch":
        """The CPU-side first half of :meth:`detect` for up to 16 images (letterbox into one
        network batch), on this thread; a detector stage shares it between two threads with
        :meth:`start_prepare`. The images themselves are not kept."""
        return self.start_prepare(images).result()

    def start_prepare(self, images) -> "BatchPreparation":
        """:meth:`prepare` that several threads can share: see :class:`BatchPreparation`."""
        return BatchPreparation(images, self._input_size, self.resize)

    def detect_prepared(self, prepared: "PreparedBatch") -> list[Detections]:
        """The second half of :meth:`detect`: one model call, then scoring, NMS and boxes in
        original pixels, one :class:`Detections` per prepared image."""
        boxes, obj, cls_p = self._predict_fn(prepared.inputs)
        n = len(prepared.transforms)
        boxes, obj, cls_p = np.asarray(boxes)[:n], np.asarray(obj)[:n], np.asarray(cls_p)[:n]
        return [self.postprocess(boxes[i], obj[i], cls_p[i], tr) for i, tr in enumerate(prepared.transforms)]

    def postprocess(self, boxes, obj, cls_p, transform) -> Detections:
        """One image: boxes float32[N,4] input px, obj [N], cls_p [N,C] -> Detections (original px)."""
        conf = self.conf_threshold
        cand = np.nonzero(obj > conf)[0]  # score <= objectness, so this prefilter is exact
        if cand.size == 0:
            return Detections.empty()
        scores = obj[cand, None] * cls_p[cand]  # [M, C]
        rows, cols = np.nonzero(scores > conf)
        if rows.size == 0:
            return Detections.empty()
        b = boxes[cand[rows]]
        s = scores[rows, cols]
        keep = nms(b, s, cols, self.iou_threshold, self.max_detections)
        return Detections(transform.to_original(b[keep]), s[keep], cols[keep].astype(np.int32))


class BatchPreparation:
    """Up to 16 images being letterboxed into one network batch, by any number of threads.

    Each :meth:`work` call letterboxes images that no other caller has claimed yet, one at a
    time, until none is left; :meth:`result` does the same, waits for the images other
    threads claimed and returns the :class:`PreparedBatch`. A detector stage's prefetch
    thread starts a batch while the network runs and the network thread finishes it, so
    the letterbox work goes to whichever CPU is free first instead of to a fixed one. An
    error in any thread's image is raised by :meth:`result`."""

    def __init__(self, images, input_size: tuple[int, int], resize: str = "letterbox"):
        self._images = list(images)
        self._n = n = len(self._images)
        if n > BATCH_SIZES[-1]:
            raise ValueError(f"prepare takes at most {BATCH_SIZES[-1]} images, got {n}")
        h, w = input_size
        self._size = (h, w)
        self._resize = resize
        self._inputs = np.zeros((_padded_batch(n), h, w, 3), np.float32)
        self._transforms: list = [None] * n
        self._claimed = 0
        self._finished = 0
        self._failed = 0
        self._error: BaseException | None = None
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return self._n

    def work(self) -> int:
        """Letterbox unclaimed images until none is left; returns how many this call did."""
        n, done = self._n, 0
        scratch = np.empty((*self._size, 3), np.uint8)
        while True:
            with self._cond:
                if self._claimed >= n or self._error is not None:
                    return done
                i = self._claimed
                self._claimed += 1
            try:
                _, tr = letterbox_uint8(np.asarray(self._images[i]), self._size, self._resize, out=scratch)
                np.multiply(scratch, np.float32(1.0 / 255.0), out=self._inputs[i], casting="unsafe")
            except BaseException as exc:
                with self._cond:
                    self._error = self._error or exc
                    self._failed += 1
                    self._cond.notify_all()
                    # the caller frees the frames on this error: first let the images other
                    # threads claimed finish (no new ones are claimed after an error)
                    self._cond.wait_for(self._settled)
                raise
            with self._cond:
                self._transforms[i] = tr
                self._finished += 1
                self._cond.notify_all()
            done += 1

    def _settled(self) -> bool:
        """Every claimed image is done or failed (call with the lock held)."""
        return self._finished + self._failed == self._claimed

    def result(self) -> "PreparedBatch":
        """Finish the batch (in this thread, with whoever else is working on it). On an error,
        in this thread or another, no thread reads the images any more when it is raised."""
        self.work()  # returns once every image is claimed, or after another thread's error
        with self._cond:
            self._cond.wait_for(self._settled)
            if self._error is not None:
                raise self._error
        self._images = []  # the frames may be ring slots the caller frees next
        return PreparedBatch(self._inputs, self._transforms)


@dataclass(frozen=True)
class PreparedBatch:
    """Network input for a batch: ``inputs`` float32[B, h, w, 3] RGB in 0..1 (B padded to one of
    BATCH_SIZES) and one :class:`LetterboxTransform` per real image (len <= B)."""

    inputs: np.ndarray
    transforms: list


def frozen_function(concrete_fn):
    """``concrete_fn`` (one float32 tensor in) with its variables folded into constants;
    used for the detector here and the learned embedder in :mod:`detector.embedder`.

    With constant filters TensorFlow's graph optimiser fuses each convolution with its bias
    and activation and oneDNN caches the filter's packed layout, instead of repacking the
    variable on every call (yolov4-tiny at batch 1 on 2 cores under oneDNN: 11 frames/s
    unfrozen, 16-20 frozen, in a throwaway timing loop). The returned callable keeps
    ``concrete_fn``'s outputs (a tensor, list or dict, as the original). Falls back to
    ``concrete_fn`` if this TensorFlow lacks the converter (it lives in ``tensorflow.python``)."""
    try:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    except ImportError:  # pragma: no cover - depends on the TensorFlow build
        return concrete_fn
    frozen = convert_variables_to_constants_v2(concrete_fn)
    structured = concrete_fn.structured_outputs
    # The frozen function has no structured signature, so ``frozen(x)`` first fails to bind
    # x, builds a TypeError whose message prints the whole input tensor, and only then
    # takes the flat calling path: 8.6 ms per call for the default model at batch 8 (41.7
    # vs 33.1 ms in an ad-hoc loop). Take the flat path directly where this TensorFlow has it.
    call_flat = getattr(frozen, "_call_flat", None)
    captured = getattr(frozen, "captured_inputs", None)

    def call(x):
        import tensorflow as tf

        x = tf.convert_to_tensor(x, tf.float32)
        flat = call_flat([x], captured) if call_flat is not None and captured is not None else frozen(x)
        return tf.nest.pack_sequence_as(structured, flat)

    return call


def _padded_batch(n: int) -> int:
    for b in BATCH_SIZES:
        if n <= b:
            return b
    return n

