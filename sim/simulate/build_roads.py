"""Build the compact road graph the simulator drives on, from an OpenStreetMap XML extract.

    python -m sim.simulate.build_roads [--osm ../shared/data/sf_north_roads_osm.osm] [--out sim/data/…]

Keeps drivable `highway=*` ways (not access=no/private), splits them into directed edges respecting
`oneway` (yes/true/1, -1, implied on motorways and roundabouts), gives each edge a speed from `maxspeed` (or a
default per road class), and keeps the largest strongly connected component so that every node can reach
every other (a unit never picks an unreachable destination). Output: gzipped JSON (see `roads.load_graph`).
The data is OpenStreetMap's: ODbL 1.0, © OpenStreetMap contributors.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from sim.simulate.roads import DEFAULT_GRAPH_PATH, GRAPH_FORMAT

_MPH_TO_MPS = 0.44704
_KMH_TO_MPS = 1 / 3.6
# Speed limits by road class where a way has no maxspeed (m/s; US urban defaults, San Francisco).
_DEFAULT_SPEED_MPS = {
    "motorway": 50 * _MPH_TO_MPS,
    "motorway_link": 35 * _MPH_TO_MPS,
    "trunk": 35 * _MPH_TO_MPS,
    "trunk_link": 25 * _MPH_TO_MPS,
    "primary": 30 * _MPH_TO_MPS,
    "primary_link": 25 * _MPH_TO_MPS,
    "secondary": 30 * _MPH_TO_MPS,
    "secondary_link": 25 * _MPH_TO_MPS,
    "tertiary": 25 * _MPH_TO_MPS,
    "tertiary_link": 25 * _MPH_TO_MPS,
    "unclassified": 25 * _MPH_TO_MPS,
    "residential": 25 * _MPH_TO_MPS,
    "living_street": 10 * _MPH_TO_MPS,
    "service": 10 * _MPH_TO_MPS,
}
_CLOSED_ACCESS = {"no", "private"}
_FORWARD = {"yes", "true", "1"}


@dataclass
class RawGraph:
    """Nodes by OSM id (lon, lat) and directed edges (from id, to id, speed m/s)."""

    coords: dict[int, tuple[float, float]] = field(default_factory=dict)
    edges: list[tuple[int, int, float]] = field(default_factory=list)


def parse_maxspeed(value: str | None) -> float | None:
    """'25 mph' / '50' (km/h) / '40 km/h' -> m/s; None when absent or unreadable."""
    if not value:
        return None
    number, _, unit = value.strip().partition(" ")
    try:
        speed = float(number)
    except ValueError:
        return None
    return speed * (_MPH_TO_MPS if unit.strip() == "mph" else _KMH_TO_MPS)


def _direction(tags: dict[str, str]) -> int:
    """+1 forward only, -1 backward only, 0 both ways."""
    oneway = tags.get("oneway", "")
    if oneway in _FORWARD:
        return 1
    if oneway == "-1":
        return -1
    if oneway == "no":
        return 0
    implied = tags.get("highway") in ("motorway", "motorway_link") or tags.get("junction") in (
        "roundabout",
        "circular",
    )
    return 1 if implied else 0


def way_edges(refs: list[int], tags: dict[str, str]) -> list[tuple[int, int, float]]:
    """The directed edges (from, to, speed m/s) of one OSM way; none if it is not a drivable road."""
    road_class = tags.get("highway", "")
    if road_class not in _DEFAULT_SPEED_MPS or tags.get("access") in _CLOSED_ACCESS:
        return []
    speed_mps = parse_maxspeed(tags.get("maxspeed")) or _DEFAULT_SPEED_MPS[road_class]
    direction = _direction(tags)
    edges: list[tuple[int, int, float]] = []
    for a, b in itertools.pairwise(refs):
        if a == b:
            continue
        if direction >= 0:
            edges.append((a, b, speed_mps))
        if direction <= 0:
            edges.append((b, a, speed_mps))
    return edges


def read_osm(osm_path: Path) -> RawGraph:
    """Directed drivable edges of an OSM XML file (streamed: nodes come before ways in OSM XML)."""
    raw = RawGraph()
    all_coords: dict[int, tuple[float, float]] = {}
    for _, elem in ET.iterparse(osm_path, events=("end",)):
        if elem.tag == "node":
            all_coords[int(elem.attrib["id"])] = (float(elem.attrib["lon"]), float(elem.attrib["lat"]))
            elem.clear()
        elif elem.tag == "way":
            refs = [int(nd.attrib["ref"]) for nd in elem.iter("nd")]
            tags = {tag.attrib["k"]: tag.attrib["v"] for tag in elem.iter("tag")}
            raw.edges.extend(way_edges(refs, tags))
            elem.clear()
    used = {n for a, b, _ in raw.edges for n in (a, b)}
    raw.coords = {n: all_coords[n] for n in used}
    return raw


def largest_strong_component(nodes: list[int], edges: list[tuple[int, int, float]]) -> set[int]:
    """Kosaraju, iterative (the graph is too deep for recursion)."""
    out: dict[int, list[int]] = {n: [] for n in nodes}
    back: dict[int, list[int]] = {n: [] for n in nodes}
    for a, b, _ in edges:
        out[a].append(b)
        back[b].append(a)
    order: list[int] = []
    seen: set[int] = set()
    for start in nodes:
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(out[start]))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(out[child])))
                    break
            else:
                stack.pop()
                order.append(node)
    assigned: set[int] = set()
    best: set[int] = set()
    for root in reversed(order):
        if root in assigned:
            continue
        component = {root}
        assigned.add(root)
        todo = [root]
        while todo:
            for prev in back[todo.pop()]:
                if prev not in assigned:
                    assigned.add(prev)
                    component.add(prev)
                    todo.append(prev)
        if len(component) > len(best):
            best = component
    return best


def compact(raw: RawGraph) -> dict[str, object]:
    """The shipped document: coordinates in 1e-6 degrees, edges as flat (from, to, speed dm/s) triples."""
    keep = largest_strong_component(sorted(raw.coords), raw.edges)
    ids = sorted(keep)
    index = {osm_id: i for i, osm_id in enumerate(ids)}
    lon_e6 = [round(raw.coords[n][0] * 1e6) for n in ids]
    lat_e6 = [round(raw.coords[n][1] * 1e6) for n in ids]
    unique = {(index[a], index[b]): round(s * 10) for a, b, s in raw.edges if a in keep and b in keep}
    flat = [v for (a, b), s in sorted(unique.items()) for v in (a, b, s)]
    return {
        "format": GRAPH_FORMAT,
        "licence": "ODbL 1.0; © OpenStreetMap contributors (https://www.openstreetmap.org/copyright)",
        "nodes": len(ids),
        "edges": len(unique),
        "lon_e6": lon_e6,
        "lat_e6": lat_e6,
        "edge_from_to_speed_dmps": flat,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry: read the OSM extract, write the compact graph."""
    default_osm = Path(__file__).resolve().parents[3] / "shared" / "data" / "sf_north_roads_osm.osm"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--osm", type=Path, default=default_osm, help=f"OSM XML extract (default {default_osm})"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_GRAPH_PATH, help="output .json.gz")
    args = parser.parse_args(argv)
    if not args.osm.is_file():
        print(f"{args.osm} not found: pass --osm PATH to an OpenStreetMap XML extract", file=sys.stderr)
        return 2
    doc = compact(read_osm(args.osm))
    body = json.dumps(doc, separators=(",", ":")).encode()
    # mtime=0: the same input gives byte-identical output (clean diffs when rebuilt).
    args.out.write_bytes(gzip.compress(body, compresslevel=9, mtime=0))
    print(f"{args.out}: {doc['nodes']} nodes, {doc['edges']} directed edges, {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
