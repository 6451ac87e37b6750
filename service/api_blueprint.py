"""The API areas' blueprint: flask-smorest's, with each argument schema built once.

webargs builds a new instance of a schema *class* on every request it parses (marshmallow
copies every declared field to do it: a tenth of a simple request's Python); an instance is
used as it is. Handing flask-smorest one instance per decorator gives the same parsing, the
same OpenAPI document, and no per-request schema.
"""

from __future__ import annotations

import flask_smorest


class Blueprint(flask_smorest.Blueprint):
    def arguments(self, schema, *args, **kwargs):
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, *args, **kwargs)
