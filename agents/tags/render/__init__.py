"""Price-label rendering: validated fields + a declarative YAML template -> 1-bit planes for one panel
(see :mod:`agents.tags.render.draw`)."""

from agents.tags.render.draw import (
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
