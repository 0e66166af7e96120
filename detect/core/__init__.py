"""The foundations every detector shares: the ``Detection`` record and its geometry, the Detector
protocol and registry, model input bands, water masks, tiling, RLE masks, named weights and input reading."""
