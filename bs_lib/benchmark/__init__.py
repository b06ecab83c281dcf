r"""The benchmark: every method of the course, on one split, measured one way.

Papers on bone suppression rarely agree on data, resolution, split or metric
code, so their tables cannot be compared with each other, let alone with a
model trained on a laptop. This package measures the course's own methods under
one set of rules, so that their numbers *can* be compared:

* **one split**: every method is tested on the same saved test images
  (``<output>_split.json``, patients never shared with training);
* **one metric code**: :func:`bs_lib.metrics.evaluate` on every test image,
  over the whole image and inside the image's own lung mask, then mean ±
  standard deviation over images;
* **the identity baseline** :math:`\hat s = x`, always measured: a method that
  does not beat it on a metric has learned nothing that the metric can see;
* **the cost beside the quality**: parameters used by one prediction,
  inference time per image, and the training budget (steps × batch, wall time);
* **every number labelled with its data**: the phantom, the real development
  pairs (``--dataset real-pairs``), or any folder of pairs (``--dataset PATH``),
  broken down by source when the test set mixes several.

Beside the leaderboard, the published table of the GL-LCM re-evaluation
(1024², real dual-energy data, full training) is printed *separately*, never
ranked with ours. One job per module, each importing only those above it here:

============= ===================================================================
``methods``   which methods exist, their families and labels (the engine's registry)
``training``  training or reusing the learned methods (BS-LDM through :mod:`bs_lib.runs`)
``data``      the test images (phantom, real pairs, a folder) and their labels
``measure``   predictions, metrics per image, paired bootstrap intervals
``tables``    metric columns, Markdown and HTML tables
``published`` the published table, kept apart
``result``    the leaderboard: ranking and tables
``figures``   cases and difference maps
``report``    Markdown/HTML/JSON/CSV reports (:class:`BenchmarkResult`)
``run``       :func:`run_benchmark`
``cli``       ``python -m bs_lib benchmark``
============= ===================================================================

``bs_lib.evaluate`` re-exports the names notebooks use. Command line::

    python -m bs_lib benchmark --profile smoke --image-size 128 --output benchmarks/results/benchmark_smoke_128
"""
