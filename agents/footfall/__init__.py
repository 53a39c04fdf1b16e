"""Footfall counting: camera frames -> person detections -> tracks -> line and zone crossings -> visits.

The vision stages are pure (frames and arrays in, arrays and events out) so they are testable with
synthetic trajectories and scored on real footage:

* :mod:`agents.footfall.detectors`: ONNX person detectors (YOLOX raw head, SSD with in-graph
  post-processing, YOLOv8-style head) behind one interface;
* :mod:`agents.footfall.tracker`: a ByteTrack-class multi-object tracker;
* :mod:`agents.footfall.counting`: directional lines and zones, hysteresis, and visit de-duplication;
* :mod:`agents.footfall.mot`: MOT-format files and scoring against ground truth.

Privacy: frames never leave these functions; only boxes, ids and counts do.
"""
