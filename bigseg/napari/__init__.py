"""The napari plugin (the ``napari`` extra): a reader of outputs, a widget that runs a method.

napari finds it through the ``napari.manifest`` entry point (``napari.yaml`` beside
this file).  :mod:`~bigseg.napari._reader` opens an output directory of
``bigseg segment`` / :func:`bigseg.run` as layers placed in µm (image, the label
pyramid, centres with the nuclei table as features: :func:`bigseg.plots.napari_layers`);
:mod:`~bigseg.napari._widget` segments the current image layer: a preview of the
current plane, then the full run on a local cluster in the background.  Nothing
here is imported by bigseg itself, and napari is imported only by the widget.
"""
