"""Show the docstrings' Sphinx roles (``:func:`x```) as code in the API reference.

The docstrings follow the numpy convention, whose cross-references are Sphinx roles; Markdown
has none, so ``:func:`bigseg.open_stack``` would be printed as it is. Loaded by mkdocstrings
(``mkdocs.yml``); not part of the package.
"""

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|meth|mod|class|data|attr|obj|exc|const):`~?\.?([^`]+)`")


class SphinxRoles(griffe.Extension):
    """Turn ``:role:`target``` into ```target``` in every docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the roles of one object's docstring."""
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(r"`\1`", obj.docstring.value)
