"""E-ink price tags: panels, label rendering and on-air image encodings.

This package holds the pure half of the tag work (issue 4): everything that turns "this product, this
price" into the exact bytes a tag must show, with no I/O besides reading a template file:

* :mod:`agents.tags.panels`: the panel profiles (resolution, colour mode, mounting rotation) by name,
  e.g. ``296x128-bwr``;
* :mod:`agents.tags.render`: declarative YAML templates and validated label fields rendered into
  1-bit colour planes at the panel's native resolution, plus a PNG preview;
* :mod:`agents.tags.encoding`: raw planes and the OpenEPaperLink-compatible zlib payload, their
  decoders, and the content hash used to skip re-sending an image a tag already shows.

Why pure: the tag service, the simulator and the tests must all agree byte for byte on what a label
looks like, so rendering is deterministic (same fields, same panel -> same bytes) and free of any
transport. The tag service (desired-state store, scheduler) and the serial and BLE transports come
later and build on these modules.
"""

from agents.tags.encoding import (
    DecodedImage,
    EncodedImage,
    ImageEncodingError,
    content_hash,
    decode_raw,
    decode_zlib,
    encode_raw,
    encode_zlib,
)
from agents.tags.panels import ColourMode, Panel, UnknownPanelError, known_panels, panel_by_name
from agents.tags.render import (
    DEFAULT_TEMPLATE_PATH,
    LabelFields,
    LabelFieldsError,
    LabelImage,
    Template,
    TemplateError,
    default_template,
    load_template,
    parse_fields,
    render_label,
)

__all__ = [
    "DEFAULT_TEMPLATE_PATH",
    "ColourMode",
    "DecodedImage",
    "EncodedImage",
    "ImageEncodingError",
    "LabelFields",
    "LabelFieldsError",
    "LabelImage",
    "Panel",
    "Template",
    "TemplateError",
    "UnknownPanelError",
    "content_hash",
    "decode_raw",
    "decode_zlib",
    "default_template",
    "encode_raw",
    "encode_zlib",
    "known_panels",
    "load_template",
    "panel_by_name",
    "parse_fields",
    "render_label",
]
