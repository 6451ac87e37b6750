"""Query arguments of the flows API and page."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from service.flows.queries import GROUPS


class FlowsArgsSchema(Schema):
    alliance = fields.Integer(load_default=None, validate=validate.Range(min=1),
                              metadata={"description": "Alliance id (default: the only "
                                                       "alliance you manage)"})
    date_from = fields.Date(data_key="from", load_default=None,
                            metadata={"description": "First day (default: last full quarter)"})
    date_to = fields.Date(data_key="to", load_default=None,
                          metadata={"description": "Last day, inclusive"})
    group = fields.String(load_default="offer", validate=validate.OneOf(GROUPS),
                          metadata={"description": "Receiving side by offer or organisation; "
                                                   "team: referring teams by offer"})
