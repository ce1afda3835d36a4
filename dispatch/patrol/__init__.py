"""The patrol watch: grids and geofences entered and left, out-of-grid alerts and coverage gaps, live.

`watch.Patrol` is the adapter (reads grids, fences and assignments from the store, follows the fleet's
change records, judges on the app clock, publishes on the event bus); what it decides lives in
`dispatch.live` (`zones`, `out_of_grid`, `coverage`); `messages` spells the events and their MQTT topics.
"""

from dispatch.patrol.messages import PATROL_EVENT_TYPES, event_messages
from dispatch.patrol.watch import Patrol

__all__ = ["PATROL_EVENT_TYPES", "Patrol", "event_messages"]
