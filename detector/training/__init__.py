"""Training and evaluation of detectors and embedders: datasets, losses, k-means anchors,
re-id crops, COCO mAP. Serving code never imports this package."""
