"""rws_ref._trees: parameter dicts as flat vectors and back."""
import numpy as np

from rws_ref._trees import flatten, unflatten


def test_flatten_orders_by_the_keys_given_and_unflatten_inverts_it():
    tree = {"b": np.arange(6.0).reshape(2, 3), "a": np.array(7.0), "c": np.array([8.0, 9.0])}
    assert flatten(tree).tolist() == [7.0, 0, 1, 2, 3, 4, 5, 8, 9]                     # sorted keys by default
    assert flatten(tree, ["c", "a", "b"]).tolist() == [8, 9, 7, 0, 1, 2, 3, 4, 5]
    back = unflatten(flatten(tree, tree), tree)
    assert list(back) == list(tree) and all(np.array_equal(back[k], tree[k]) for k in tree)
    assert back["a"].shape == () and back["b"].shape == (2, 3)
