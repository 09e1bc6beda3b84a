"""The bridges' joint latent (rws_ref.checking.bridges.common.Layout), framework-free: several sites joined
into the protocol's one vector and split back, the product support of finite sites, the canonical mask,
and the per-entry domains of a mixed latent.  The frameworks' own runs are in tests/checking/bridges."""
import itertools

import numpy as np
import pytest

from rws_ref import protocol
from rws_ref.checking.bridges.common import Layout, latent_sites


def test_one_site_is_the_site_itself():
    layout = Layout([("z", (2, 3), "binary")])
    assert (layout.z_shape, layout.z_domain, layout.entries) == ((2, 3), "binary", None)
    z = np.zeros((4, 5, 2, 3))
    assert layout.split(z)["z"] is z and layout.join({"z": z}, np.concatenate) is z
    np.testing.assert_array_equal(layout.states(1000), protocol.finite_states((2, 3), "binary"))


def test_several_sites_join_in_order_and_split_back_whatever_the_leading_axes():
    layout = Layout([("a", (), 3), ("b", (2,), "real"), ("c", (2, 2), "binary")])
    assert (layout.z_shape, layout.z_domain, layout.entries) == ((7,), "real", (3, "real", "real", *["binary"] * 4))
    rng = np.random.default_rng(0)
    for lead in ((4, 5), (6,), ()):
        sites = {"a": rng.integers(0, 3, lead).astype(float), "b": rng.standard_normal(lead + (2,)),
                 "c": rng.integers(0, 2, lead + (2, 2)).astype(float)}
        z = layout.join(sites, np.concatenate)
        assert z.shape == lead + (7,)
        np.testing.assert_array_equal(z[..., 0], sites["a"])                    # the order given
        np.testing.assert_array_equal(z[..., 3:].reshape(lead + (2, 2)), sites["c"])
        for name, value in layout.split(z).items():
            np.testing.assert_array_equal(value, sites[name])


def test_finite_sites_have_the_product_of_their_own_supports_and_are_canonical_only_there():
    layout = Layout([("z1", (), "binary"), ("z2", (), 3), ("z3", (), "binary")])
    assert (layout.z_shape, layout.z_domain, layout.entries) == ((3,), 3, None)
    want = np.array(list(itertools.product(range(2), range(3), range(2))))            # 12 states, not 3³ = 27
    np.testing.assert_array_equal(layout.states(1000), want)
    assert layout.states(11) is None                                                  # over the limit
    z = np.array([[[0, 2, 1], [2, 0, 0], [1, 1, 2]]])                                 # z1 = 2, z3 = 2: not values
    cleaned, ok = layout.clean(z)
    np.testing.assert_array_equal(ok, [[True, False, False]])
    np.testing.assert_array_equal(cleaned, [[[0, 2, 1], [0, 0, 0], [1, 1, 0]]])
    assert Layout([("a", (), "binary"), ("b", (2,), "binary")]).z_domain == "binary"  # all binary: binary
    same, mask = Layout([("a", (), 3), ("b", (), 3)]).clean(z[..., :2])               # one range: nothing to mask
    assert mask is None and np.array_equal(same, z[..., :2])


def test_the_latent_sites_are_the_guides_and_the_model_must_have_the_same():
    assert latent_sites(["z1", "z2"], ["z1", "z2"], None) == ["z1", "z2"]
    assert latent_sites(["z"], ["z"], "z") == ["z"]
    with pytest.raises(ValueError, match=r"the model has latent sites \['s'\] that the guide does not draw"):
        latent_sites(["s", "z"], ["z"], None)
    with pytest.raises(ValueError, match=r"the guide has latent sites \['c'\] besides 'z'; name them all in latent="):
        latent_sites(["z", "c"], ["z", "c"], "z")
    with pytest.raises(ValueError, match=r"the guide has no latent sample site 'u'; its latent sites: \['z'\]"):
        latent_sites(["z"], ["z"], "u")
    with pytest.raises(ValueError, match="the guide has no latent sample site: nothing"):
        latent_sites([], [], None)
