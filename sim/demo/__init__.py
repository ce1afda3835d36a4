"""The demo: a simulated San Francisco fleet and command room, driving Outpost over MQTT and HTTP."""
