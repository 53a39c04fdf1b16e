"""Price-label rendering: validated fields + a declarative YAML template -> 1-bit planes for one panel.

Why this shape:

* **Declarative templates** (:mod:`~agents.tags.render.template`). A store changes the look of its labels by
  editing a YAML file, not code; one template serves every panel size through layouts chosen by aspect ratio.
  The built-in one is ``templates/price-label.yaml``.
* **Validated fields** (:mod:`~agents.tags.render.fields`). A price label that shows ``NaN`` or ``-1.00`` is
  worse than none: prices, text, EAN-13 / UPC-A check digits are checked, and every error names the field.
* **1-bit, native resolution, deterministic** (:mod:`~agents.tags.render.draw`,
  :mod:`~agents.tags.render.image`). E-paper has no grey levels, so we draw straight into 1-bit Pillow images
  (no anti-aliasing, no resampling), one plane per ink (black, and red or yellow on three-colour panels), then
  rotate losslessly into the panel's native scan order. Same fields + template + panel -> same bytes on every
  run (fonts ship inside pip packages, nothing is fetched or looked up on the host), so the content hash can
  tell "unchanged".
* **Libraries, not hand-written equivalents.** Pillow for raster and FreeType text, ``segno`` for QR codes,
  ``python-barcode`` for the EAN-13 / UPC-A module pattern (drawn with integer module widths so the bars stay
  crisp) and for the font (:mod:`~agents.tags.render.text`).
* **Fit, don't overflow.** Names wrap and shrink, then truncate with an ellipsis; text the font cannot draw,
  and a code that cannot fit at one pixel per module, are errors naming the field, never "tofu" boxes or a
  silently unreadable code on a shelf.

Modules, bottom-up: ``fields`` and ``template`` (the inputs), ``text`` (fonts and text fitting), ``image``
(:class:`LabelImage`, the output, with its PNG preview), ``draw`` (:func:`render_label`).
"""

from agents.tags.render.draw import render_label
from agents.tags.render.fields import LabelFields, LabelFieldsError, parse_fields
from agents.tags.render.image import LabelImage
from agents.tags.render.template import DEFAULT_TEMPLATE_PATH, Template, TemplateError, default_template, load_template

__all__ = [
    "DEFAULT_TEMPLATE_PATH",
    "LabelFields",
    "LabelFieldsError",
    "LabelImage",
    "Template",
    "TemplateError",
    "default_template",
    "load_template",
    "parse_fields",
    "render_label",
]
