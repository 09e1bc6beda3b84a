"""Test vectors: deterministic, schema-valid, loadable, and reproducible from their own inputs."""
import filecmp
import json

import jsonschema
import numpy as np
import pytest

from rws_ref import family, registry
from rws_ref.checking import vectors
from rws_ref.estimators import elbo_is, log_weights, normalized_weights

from _util import flat


def _leaves(tree, prefix=""):
    """Every leaf of a loaded vectors file, keyed by its path."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{prefix}/{key}").items()}
    if isinstance(tree, list) and tree and isinstance(tree[0], dict):
        return {k: v for i, sub in enumerate(tree) for k, v in _leaves(sub, f"{prefix}[{i}]").items()}
    return {prefix: tree if isinstance(tree, str) else np.asarray(tree)}


def test_every_recorded_mistake_differs_from_the_correct_answer():
    for case in vectors.load()["cases"]:
        for kind, table in case["mistakes"].items():
            right = {"elbo_is": case["elbo_is"]} if kind == "elbo_is" else case["estimators"][kind]
            for name, wrong in table.items():
                gap = max(float(np.max(np.abs(np.asarray(wrong[k]) - np.asarray(right[k])))) for k in right)
                assert gap > 1e-6, (case["name"], kind, name, gap)


def test_every_estimator_of_the_registry_is_recorded_with_its_mistakes():
    from rws_ref import registry
    from rws_ref.checking import mistakes
    recorded = {kind for case in vectors.load()["cases"] for kind in case["mistakes"]}
    assert recorded == set(registry.KINDS)
    for kind in registry.KINDS:                      # each base mistake is recorded in some case
        names = {name for case in vectors.load()["cases"] for name in case["mistakes"].get(kind, {})}
        k1_only = "K = 1 shortcut (zero, the estimator's mean, instead of its value)"
        wanted = set(mistakes.base_mistakes(kind)) - {k1_only}
        assert wanted <= names, (kind, sorted(wanted - names))


def test_every_case_records_the_mistakes_of_every_estimator_it_records():
    for case in vectors.load()["cases"]:
        assert set(case["mistakes"]) == {"elbo_is", *case["estimators"]}, case["name"]


def test_same_seed_gives_byte_identical_files_and_the_shipped_copy_is_current(tmp_path):
    a, b = vectors.write(tmp_path / "a.json"), vectors.write(tmp_path / "b.json")
    assert filecmp.cmp(a, b, shallow=False)
    shipped, fresh = _leaves(vectors.load()), _leaves(vectors.load(a))
    assert shipped.keys() == fresh.keys()
    for path, value in fresh.items():                                # every number of the whole file
        if path.endswith("rws_ref_version"):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            np.testing.assert_allclose(shipped[path], value, rtol=1e-11, atol=1e-13, err_msg=path)
        else:
            assert np.array_equal(shipped[path], value), path
    assert vectors.write(tmp_path / "c.json", seed=1) and not filecmp.cmp(a, tmp_path / "c.json", shallow=False)


def test_the_file_validates_against_the_shipped_schema(tmp_path):
    raw = json.loads(open(vectors.DEFAULT_PATH, encoding="utf-8").read())
    jsonschema.validate(raw, vectors.schema())
    one = dict(raw, cases=raw["cases"][:1])                         # the refusals, on a file of one case
    jsonschema.validate(one, vectors.schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dict(one, version=1), vectors.schema())
    deep = json.loads(json.dumps(one))
    deep["cases"][0]["x"] = [[[[[[[0.0]]]]]]]                      # deeper than the schema's tensors
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(deep, vectors.schema())
    deep["cases"][0]["x"] = [[0.0, "nan"]]                         # only ±inf may be strings
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(deep, vectors.schema())
    no_tolerance = dict(raw, cases=[{k: v for k, v in raw["cases"][0].items() if k != "tolerance"}])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(no_tolerance, vectors.schema())


def test_every_number_is_reproduced_from_the_inputs_by_the_checking_loop():
    # The loop of docs/checking.md, run with rws_ref itself as "your implementation".
    data = vectors.load()
    assert len(data["cases"]) >= 5
    mistake_gaps = {}
    for case in data["cases"]:
        model, guide = vectors.make_model(case["model"]), vectors.make_guide(case["guide"])
        theta, phi, x, z = case["theta"], case["phi"], case["x"], case["z"]
        log_w = log_weights(model, guide, theta, phi, x, z)
        np.testing.assert_allclose(log_w, case["log_weights"], rtol=1e-12)
        np.testing.assert_allclose(elbo_is(log_w), case["elbo_is"], rtol=1e-12)
        np.testing.assert_allclose(normalized_weights(log_w), case["normalized_weights"], rtol=1e-10, atol=1e-300)
        inputs = registry.Case(theta, phi, x, z, case.get("eps"), case["dream_z"], case["dream_x"], case["iota"],
                               case.get("delta"))
        for name, want in case["estimators"].items():
            entry = registry.get(name)
            got = entry.function(*registry.arguments(entry, model, guide, inputs))
            np.testing.assert_allclose(flat(got), flat(want), rtol=1e-10, atol=1e-12, err_msg=name)
        for kind, table in case["mistakes"].items():
            right = {"elbo_is": case["elbo_is"]} if kind == "elbo_is" else case["estimators"][kind]
            for mistake, value in table.items():
                gap = np.max(np.abs(flat(value) - flat(right)))
                mistake_gaps[kind, mistake] = max(mistake_gaps.get((kind, mistake), 0.0), gap)
    # every recorded mistake shows plainly in the numbers of at least one case
    assert len(mistake_gaps) >= 80 and min(mistake_gaps.values()) > 1e-3, min(mistake_gaps.items(), key=lambda i: i[1])


def test_exact_sections_are_consistent():
    for case in vectors.load()["cases"]:
        if "exact" not in case:
            continue
        ex = case["exact"]
        assert np.all(ex["elbo_is"] < ex["log_marginal"])
        np.testing.assert_allclose(flat(ex["moments"]["wake_theta"]["mean"]), flat(ex["grad_elbo_is_theta"]),
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(flat(ex["moments"]["reinforce_phi"]["mean"]), flat(ex["grad_elbo_is_phi"]),
                                   rtol=1e-9, atol=1e-12)


def test_numerics_case_holds_extreme_and_zero_weights():
    num = vectors.load()["numerics"][0]
    log_w = num["log_weights"]
    assert np.isneginf(log_w).any() and np.abs(log_w[np.isfinite(log_w)]).max() >= 1e4
    np.testing.assert_allclose(num["elbo_is"], elbo_is(num["log_weights"]), rtol=1e-15)
    np.testing.assert_allclose(num["vimco_signals"], family.vimco_signals(num["vimco_log_weights"]), rtol=1e-12)


@pytest.mark.parametrize("content, words", [
    (None, "no such vectors file"),
    ("{not json", "not valid JSON"),
    ('{"format": "something else"}', "not an rws_ref test-vectors"),
    ('{"format": "rws_ref test vectors", "version": 99}', "format version"),
])
def test_load_refuses_bad_files(tmp_path, content, words):
    path = tmp_path / "v.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=words):
        vectors.load(path)


def test_cli_writes_the_same_file(tmp_path):
    from rws_ref.cli import main
    assert main(["vectors", "--out", str(tmp_path / "v.json"), "--seed", "3"]) == 0
    assert filecmp.cmp(tmp_path / "v.json", vectors.write(tmp_path / "w.json", seed=3), shallow=False)


def test_a_file_missing_a_field_is_refused_naming_it(tmp_path):
    full = json.loads(open(vectors.DEFAULT_PATH, encoding="utf-8").read())
    two = json.dumps(dict(full, cases=full["cases"][:2]))          # two cases are enough to be refused
    raw = json.loads(two)
    del raw["cases"][1]["tolerance"]
    (tmp_path / "v.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="at cases/1: 'tolerance' is a required property"):
        vectors.load(tmp_path / "v.json")
    raw = json.loads(two)
    raw["cases"][0]["K"] = "four"
    (tmp_path / "w.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="at cases/0/K"):
        vectors.load(tmp_path / "w.json")
