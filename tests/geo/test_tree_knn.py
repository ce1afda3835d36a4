"""SphereTree's k-NN, called through ctypes without argument conversion, answers as rtree's public API does
on the same tree (same ids, same order, the extra ids of a tie at the far end included)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from geo._tree import SphereTree, sphere_point

lon_lats = st.tuples(st.floats(-180.0, 180.0), st.floats(-90.0, 90.0))
spots = st.sampled_from([(180.0, 0.0), (-180.0, 0.0), (0.0, 90.0), (0.0, -90.0), (-122.4, 37.8)])


@given(st.lists(lon_lats | spots, min_size=1, max_size=60), lon_lats | spots, st.integers(1, 70))
def test_the_k_nn_matches_rtrees_public_api(
    points: list[tuple[float, float]], query: tuple[float, float], want: int
) -> None:
    tree = SphereTree((i, sphere_point(*p)[3:] * 2, None) for i, p in enumerate(points))
    q = sphere_point(*query)
    got = tree.nearest(q[3], q[4], q[5], want)
    assert got == list(tree._rtree.nearest(q[3:] * 2, want))
    assert len(got) >= min(want, len(points)) and len(set(got)) == len(got)


def test_the_k_nn_of_an_emptied_tree_is_empty() -> None:
    tree = SphereTree()
    tree.insert(7, *sphere_point(1.0, 2.0)[3:])
    assert tree.nearest(*sphere_point(1.0, 2.0)[3:], 3) == [7]
    tree.delete(7, *sphere_point(1.0, 2.0)[3:])
    assert tree.nearest(*sphere_point(0.0, 0.0)[3:], 3) == []
