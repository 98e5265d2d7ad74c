"""The block layer: the only ``map_blocks`` / overlap / stitch code of bigseg.

It knows no segmentation method: kernels and their halos come from :mod:`bigseg.methods`.

- :mod:`~bigseg.chunked.plan`: which blocks to work on (whole planes, or y/x blocks that
  hold a halo);
- :mod:`~bigseg.chunked.maps`: map a kernel over blocks grown by a halo (the margin is
  passed to the kernel), per-block tables as one dask DataFrame, and per-block
  histograms reduced to one statistic per time point;
- :mod:`~bigseg.chunked.stitch`: labels of split planes, stitched across block faces
  with one union-find over per-face tables;
- :mod:`~bigseg.chunked.relabel`: per-block lookup-table relabelling.
"""
