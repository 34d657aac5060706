"""The lookup functions a bot script may call on the media gateway (`lookup:` with
`function:`), by name. Scripts naming any other function are refused where they are
checked and deployed, and by the gateway itself."""

from __future__ import annotations

from bots.demo_orders import find_order

FUNCTIONS = {"find_order": find_order}
