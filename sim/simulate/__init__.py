"""Device fleets for the demo, tests and load tests, published over MQTT.

- `run.simulate(SimulateOptions)`: publish a fleet (road network, random walk, replayed traces) to a broker;
  `cli.add_simulate_arguments` / `cli.run_simulate` wire it to `outpost simulate`.
- `roads`: the road graph of northern San Francisco (shipped; `python -m sim.simulate.build_roads`).
- `incidents`: calls for service from real SFPD incidents, shifted to now and accelerated (`IncidentFeed`).
"""
