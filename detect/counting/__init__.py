"""From detections to numbers: daily counts per zone (``aggregate``), visits and stays (``visits``),
claim verdicts (``claims``) and AIS matching (``ais``)."""
