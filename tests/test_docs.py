"""The docs stay true: the site's API reference covers every public name, the site's navigation holds every
page, and every page is in the course or the reference (the pages' examples are doctests of their own)."""
import importlib
import importlib.util
import inspect
import json
import os
import re

import numpy as np
import pytest

import rws_ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return handle.read()


def test_the_api_reference_renders_the_module_of_every_public_name():
    modules = set(re.findall(r"^::: (rws_ref[\w.]*)$", _read("docs", "reference.md"), flags=re.M))
    for name in rws_ref.__all__:
        if name == "__version__":
            continue
        obj = getattr(rws_ref, name)
        if inspect.ismodule(obj):                          # a subpackage: its modules are rendered
            assert any(m.startswith(obj.__name__ + ".") or m == obj.__name__ for m in modules), name
            continue
        home = obj.__module__
        assert home in modules, f"rws_ref.{name} is defined in {home}, which docs/reference.md does not render"
    for module in modules:
        importlib.import_module(module)                    # a ::: line names a module that exists


def test_the_site_navigation_holds_every_page():
    nav = _read("mkdocs.yml")
    pages = {f for f in os.listdir(DOCS) if f.endswith(".md")}
    listed = set(re.findall(r":\s*([\w.-]+\.md)\s*$", nav, flags=re.M))
    assert pages == listed, f"in docs/ but not in mkdocs.yml: {sorted(pages - listed)}; " \
                            f"in mkdocs.yml but not in docs/: {sorted(listed - pages)}"


def test_every_doctest_block_is_shown_as_python_that_compiles():
    """The site shows the pages' doctest blocks without prompts (docs/hooks.py): each must still be Python."""
    spec = importlib.util.spec_from_file_location("docs_hooks", os.path.join(DOCS, "hooks.py"))
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    shown = 0
    for name in sorted(os.listdir(DOCS)):
        if name.endswith(".md"):
            for match in hooks.DOCTEST.finditer(_read("docs", name)):
                code = hooks.pasteable(match)[len("```python\n"):-len("```")]
                compile(code, f"{name}: block at {match.start()}", "exec")
                assert ">>> " not in code and "\n... " not in code
                shown += 1
    assert shown >= 10


def _cell(value, interval):
    low, high = interval
    return f"{value:.3f} ± {(high - low) / 2:.3f}"


def test_the_digits_chapter_quotes_its_measurements():
    """docs/digits.md's tables of the earlier set-up (8 latent bits, RWS as wake-φ only) are the measured files
    in docs/figures, row by row, re-rendered here."""
    text = _read("docs", "digits.md")
    summary = json.loads(_read("docs", "figures", "bb2015_digits_8bit_summary.json"))
    assert summary["iterations"] == 20_000 and summary["seeds"] >= 5 and len(summary["final"]) == 14
    for name, c in summary["final"].items():
        method, K = name.split(" K=")
        row = " | ".join([method, K, *(_cell(c[k], c[f"{k}_interval"]) for k in
                                       ("log_likelihood", "is_estimate", "posterior_error")),
                          f"{summary['seconds_per_run'][name]:.0f}"])
        assert f"| {row} |" in text, row
    gap = json.loads(_read("docs", "figures", "bb2015_gap.json"))
    assert gap["iterations"] == 20_000 and len(gap["runs"]) == 14 * summary["seeds"]
    cells = {}
    for run in gap["runs"]:
        cells.setdefault((run["method"], run["K"]), []).append(run)
    for (method, K), runs in cells.items():
        exact = np.mean([r["exact"] for r in runs])
        assert exact == pytest.approx(summary["final"][f"{method} K={K}"]["log_likelihood"], abs=1e-9)
        gaps = []
        for k in gap["eval_ks"]:
            mean = np.mean([r["exact"] - r["estimates"][str(k)][0] for r in runs])
            se = np.sqrt(sum(r["estimates"][str(k)][1] ** 2 for r in runs)) / len(runs)
            gaps.append(f"{mean:.3f} ± {se:.3f}")
        row = " | ".join([method, str(K), f"{exact:.3f}", *gaps])
        assert f"| {row} |" in text, row


TEST_PATH = re.compile(r"(?<![\w/.])(tests/[\w/]+\.py)")


@pytest.mark.parametrize("source", [".ci/run", "README.md"] + [f"docs/{f}" for f in sorted(os.listdir(DOCS))
                                                               if f.endswith(".md")])
def test_every_test_file_named_by_ci_readme_or_docs_exists(source):
    """A test file moved without its mentions breaks CI (the bridge stage once ran a path that no longer
    existed: 'file or directory not found', exit 4) or sends a reader nowhere."""
    named = set(TEST_PATH.findall(_read(*source.split("/"))))
    missing = sorted(p for p in named if not os.path.exists(os.path.join(ROOT, p)))
    assert not missing, f"{source} names test files that do not exist: {missing}"


def test_the_ci_runs_every_test_file_the_core_suite_skips_for_a_missing_framework():
    """Each test file that skips itself without pyro, numpyro, tensorflow_probability, torch, jax or
    distributed is run by some stage of .ci/run that installs them."""
    ci = _read(".ci", "run")
    skipping = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "tests")):
        for name in files:
            if name.startswith("test_") and name.endswith(".py"):
                text = _read(os.path.relpath(os.path.join(folder, name), ROOT))
                if re.search(r"importorskip\((\"(pyro|numpyro|tensorflow|torch|jax|distributed)|framework|old)", text):
                    skipping.add(os.path.relpath(os.path.join(folder, name), ROOT))
    assert skipping, "no test file skips for a missing framework: the pattern is stale"
    assert not sorted(p for p in skipping if p not in ci), sorted(p for p in skipping if p not in ci)


def _block(text, name):
    match = re.search(rf"<!-- {name} -->\n(.*?)<!-- /{name} -->", text, flags=re.S)
    assert match, f"the marked block {name} is missing"
    return match.group(1)


def test_the_control_flow_chapter_quotes_its_worked_example_recomputed_by_hand():
    """docs/control_flow.md's reparameterization example, every row recomputed here over the 13 program paths
    by sums written out (no rws_ref estimator, no exact-oracle function): the bound's gradient by central
    differences of the enumerated bound, REINFORCE's mean and variance from its K = 1 form (log w − 1) ∇ log q."""
    from rws_ref import Scene1D, SceneGuide
    model, guide = Scene1D(n_max=2, positions=3, pixels=6), SceneGuide(n_max=2, positions=3, pixels=6, hidden=4)
    theta, phi = model.true_theta(), guide.init_phi(np.random.default_rng(0))
    x = model.sample(theta, 1, np.random.default_rng(7))[1]
    states = model.support()
    assert len(states) == 13
    z = states[:, None]

    def log_q(p):
        return guide.log_prob(p, z, x)[:, 0]
    log_p = model.log_joint(theta, z, x)[:, 0]
    q = np.exp(log_q(phi))
    post = np.exp(log_p - np.logaddexp.reduce(log_p))

    def by_count(table):
        return [table[states[:, 0] == n].sum() for n in range(3)]

    def elbo(p):
        return np.sum(np.exp(log_q(p)) * (log_p - log_q(p)))
    h, grad = 1e-6, []
    for c in range(3):
        up, down = {k: v.copy() for k, v in phi.items()}, {k: v.copy() for k, v in phi.items()}
        up["count_b"][c] += h
        down["count_b"][c] -= h
        grad.append((elbo(up) - elbo(down)) / (2 * h))
    # the score of each path in count_b: onehot(n) − q(·|x), one softmax step (the guide's count head)
    qn = np.array(by_count(q))
    score = np.eye(3)[states[:, 0]] - qn
    pathwise = -(q[:, None] * score).sum(axis=0)
    signal = (log_p - log_q(phi) - 1.0)[:, None] * score
    mean = (q[:, None] * signal).sum(axis=0)
    sd = np.sqrt((q[:, None] * signal ** 2).sum(axis=0) - mean ** 2)
    np.testing.assert_allclose(mean, grad, rtol=1e-6)                 # REINFORCE is unbiased, by two routes
    kl = -(post[:, None] * score).sum(axis=0)

    def row(label, values, digits=3):
        return f"| {label} | " + " | ".join(f"{v:.{digits}f}".replace("-", "−") for v in values) + " |"
    lines = ["| | n = 0 | n = 1 | n = 2 |", "|---|---|---|---|", row("q_φ(n \\| x)", qn),
             row("p_θ(n \\| x)", by_count(post)), row("∇ ELBO (exact)", grad),
             row("pathwise estimator, mean", np.abs(pathwise)), row("REINFORCE, mean", mean),
             row("REINFORCE, standard deviation of one draw", sd, 2)]
    text = _read("docs", "control_flow.md")
    assert _block(text, "reparam-example").strip().splitlines() == lines
    assert np.max(np.abs(pathwise)) < 2e-16
    assert f"x = ({', '.join(f'{v:.2f}' for v in x[0])})".replace("-", "−") in text
    assert "∇_φ KL = (" + ", ".join(f"{v:.3f}" for v in kl).replace("-", "−") + ")" in text
    ratios = sd / np.abs(mean)
    assert f"{round(ratios.min())} to {round(ratios.max())} times" in text


def test_the_exercises_page_counts_the_graded_mistakes():
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tests", "checking"))
    try:
        spec = importlib.util.spec_from_file_location("exercise_tests", os.path.join(ROOT, "tests", "checking",
                                                                                    "test_exercises.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(os.path.join(ROOT, "tests", "checking"))
    ones = "one two three four five six seven eight nine".split()
    number = len(module.MISTAKES)
    assert 20 <= number < 40, number                                    # the page writes it in words
    words = ("twenty", "thirty")[number // 10 - 2] + (f"-{ones[number % 10 - 1]}" if number % 10 else "")
    assert f"every one of them right, and {words} wrong ones" in " ".join(_read("docs", "exercises.md").split())
    from rws_ref.checking import exercises
    rows = re.findall(r"^\| (\d+) \| `(\w+)`", _read("docs", "exercises.md"), flags=re.M)
    assert [name for _, name in rows] == [e.name for e in exercises.EXERCISES]


def _quartile_cell(c, key):
    low, high = c[f"{key}_quartiles"]
    return f"{c[f'{key}_median']:.4f} [{low:.4f}, {high:.4f}]".replace("-", "−")


def _quoted_summary(summary_file, page, name, keys):
    """The marked block ``name`` of docs/``page`` holds every row of the summary file: method, K, each of ``keys``
    as median [25 %, 75 %], failed/seeds.  Returns (summary, block)."""
    summary = json.loads(_read("docs", "figures", summary_file))
    block = _block(_read("docs", page), name)
    for cell_name, c in summary["final"].items():
        method, K = cell_name.split(" K=")
        row = " | ".join([method, K, *(_quartile_cell(c, k) for k in keys), f"{c['failed']}/{c['seeds']}"])
        assert f"| {row} |" in block, row
    return summary, block


def test_the_control_flow_chapter_quotes_the_measured_comparison():
    """docs/control_flow.md's table is docs/figures/le2019_scene_summary.json, row by row, re-rendered here."""
    summary, block = _quoted_summary("le2019_scene_summary.json", "control_flow.md", "le2019-scene",
                                     ("log_lik_gap", "inference_error", "count_tv"))
    assert summary["iterations"] == 2_000 and summary["seeds"] == 5 and len(summary["final"]) == 20
    assert "half its starting gap" in block and "half its value at the start" in summary["failed_when"]


def test_every_mutant_of_the_mutation_benchmark_still_applies():
    """benchmarks/mutation.py plants each bug by replacing one exact text: a refactor that removes the text would
    silently drop the mutant from the score, so each must occur exactly once and name test files that exist."""
    spec = importlib.util.spec_from_file_location("mutation", os.path.join(ROOT, "benchmarks", "mutation.py"))
    mutation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mutation)
    assert len(mutation.MUTANTS) >= 30
    for what, path, old, new, tests in mutation.MUTANTS:
        assert _read(*path.split("/")).count(old) == 1, f"mutant {what!r}: its text occurs not exactly once in {path}"
        assert old != new and all(os.path.exists(os.path.join(ROOT, t)) for t in tests), what
    assert set(mutation.EXPLAINED) <= {m[0] for m in mutation.MUTANTS}          # an explanation names a mutant


def test_the_trust_section_quotes_every_measurement_file():
    """docs/checking.md, "How much each level can be trusted": each table is its measurement file in docs/figures
    rendered again by benchmarks/trust.py (false failures, end to end, the stated power, the check's cost)."""
    spec = importlib.util.spec_from_file_location("trust", os.path.join(ROOT, "benchmarks", "trust.py"))
    trust = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trust)
    text = _read("docs", "checking.md")
    for name, render in trust.TABLES.items():
        assert trust.block(text, name) == render() + "\n", f"docs/checking.md's {name} table is not its file's"
    ff = json.loads(_read("docs", "figures", "false_failures.json"))["summary"]
    assert ff["seeds"] >= 50 and ff["rate"] <= ff["stated_bound"]            # the bar, measured


def test_the_reproduction_page_quotes_the_run_from_the_authors_start():
    """docs/reproduce.md's table from the authors' start is docs/figures/le2019_gmm_far_summary.json, re-rendered."""
    summary, _ = _quoted_summary("le2019_gmm_far_summary.json", "reproduce.md", "le2019-gmm-far",
                                 ("model_error", "inference_error"))
    assert summary["iterations"] == 10_000 and summary["seeds"] == 10 and len(summary["final"]) == 20
    assert "half the model error at the start" in summary["failed_when"]


def test_the_findings_from_the_authors_start_are_the_summarys_medians():
    """Every number of the findings from the authors' start, recomputed from the summary's medians and failure
    counts (three decimals), and the claims about the quartiles and the failed seeds checked against them."""
    final = json.loads(_read("docs", "figures", "le2019_gmm_far_summary.json"))["final"]
    text = " ".join(_read("docs", "reproduce.md").split())
    findings = text[text.index("**From the authors' start**"):text.index("**From the mirrored start**")]

    def med(method, K, key="inference_error"):
        return f"{final[f'{method} K={K}'][f'{key}_median']:.3f}"
    ks = (2, 5, 10, 20)
    assert [final[f"WS K={K}"]["failed"] for K in ks] == [10, 10, 10, 6] and "6 of 10 at K = 20" in findings
    assert all(final[f"{m} K={K}"]["failed"] == 0 for m in ("WW", "δ-WW", "REINFORCE", "VIMCO") for K in ks)
    assert f"({med('WS', 2, 'model_error')} against 0.694)" in findings
    assert f"inference error is {med('WS', 2)}" in findings
    for method in ("WW", "δ-WW"):
        assert f"{method} {', '.join(med(method, K) for K in ks)}" in findings
        low, high = final[f"{method} K=10"]["inference_error_quartiles"]
        assert low <= final[f"{method} K=20"]["inference_error_median"] <= high          # "within the quartiles"
    assert (f"({', '.join(med('VIMCO', K, 'model_error') for K in ks[1:])} against "
            f"{', '.join(med('WW', K, 'model_error') for K in ks[1:])})") in findings
    assert f"stays at {', '.join(med('VIMCO', K) for K in ks[1:])}" in findings
    ratio = [final[f"VIMCO K={K}"]["inference_error_median"] / final[f"WW K={K}"]["inference_error_median"]
             for K in (10, 20)]
    assert all(2.5 < r < 3.5 for r in ratio) and "about three times WW's at K ≥ 10" in findings
    reinforce = [final[f"REINFORCE K={K}"]["inference_error_median"] for K in ks]
    assert f"between {min(reinforce):.3f} and {max(reinforce):.3f}" in findings
    assert (f"δ-WW reaches {med('δ-WW', 2, 'model_error')} and {med('δ-WW', 2)} where WW is at "
            f"{med('WW', 2, 'model_error')} and {med('WW', 2)}") in findings


def test_the_snr_page_says_what_its_numbers_show():
    """docs/estimator_family.md against docs/figures/snr_study.json: the table is the data rendered again by
    benchmarks/snr_study.py, and every number of the prose below it is recomputed from the data — the local
    slopes quoted, IWAE φ's slope over the used K with its interval and whether it holds −½, the replicates
    its K = 1000 point would need, the four last segments within 0.01 of ½, the zero points at K = 1."""
    data = json.loads(_read("docs", "figures", "snr_study.json"))
    spec = importlib.util.spec_from_file_location("snr_study", os.path.join(ROOT, "benchmarks", "snr_study.py"))
    snr_study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(snr_study)
    page = _read("docs", "estimator_family.md")
    assert _block(page, "snr-table").strip() == snr_study.table(data).strip()
    text = " ".join(page.split())
    e = data["estimators"]

    def signed(v):
        return f"{v:+.3f}".replace("-", "−")

    def local(name, j, with_interval=False):
        v, (low, high) = e[name]["local_slope"][j], e[name]["local_slope_interval"][j]
        return signed(v) + (f" [{signed(low)}, {signed(high)}]" if with_interval else "")
    theta = e["IWAE θ"]
    assert f"{local('IWAE θ', 0)} from K = 1 to 10, then {local('IWAE θ', 1)} and {local('IWAE θ', 2)}" in text
    assert f"slope over all four K ({signed(theta['slope'])}) is below ½" in text and theta["slope"] < 0.5
    phi = e["IWAE φ"]
    assert f"{local('IWAE φ', 0, True)} from K = 1 to 10 and {local('IWAE φ', 1, True)} from K = 10" in text
    low, high = phi["local_slope_interval"][1]
    assert ("an interval that holds −½" in text) == (low <= -0.5 <= high)
    assert f"over K = 1..100 the slope is {signed(phi['slope'])} [{signed(phi['slope_interval'][0])}, " \
           f"{signed(phi['slope_interval'][1])}]" in text and phi["resolved"] == [True, True, True, False]
    need = data["replicates_per_inverse_snr2"] / phi["snr"][3] ** 2
    assert f"SNR of {phi['snr'][3]:.4f}" in text and f"≈ {need / 1e6:.1f}·10⁶" in text
    assert data["replicates"]["1000"] == 200_000 and "200,000 were drawn" in text
    last = [e[n]["local_slope"][2] for n in ("STL φ", "IWAE-DReG φ", "RWS wake-φ", "RWS-DReG φ")]
    assert all(abs(v - 0.5) < 0.01 for v in last) and ", ".join(signed(v) for v in last) in text
    assert f"IWAE-DReG {local('IWAE-DReG φ', 0)} from K = 1 to 10" in text
    assert e["IWAE-DReG φ"]["snr"][0] == e["STL φ"]["snr"][0] and f"{e['STL φ']['snr'][0]:.4f}" in text
    assert f"steeper for wake-φ ({local('RWS wake-φ', 1)}" in text
    assert f"is {e['RWS wake-φ']['snr'][0]:.5f}" in text and e["RWS-DReG φ"]["snr"][0] == 0.0
    assert not e["RWS wake-φ"]["resolved"][0] and not e["RWS-DReG φ"]["resolved"][0]
    assert f"+0.500 [{signed(theta['local_slope_interval'][2][0])}, {signed(theta['local_slope_interval'][2][1])}]" \
           in text

def test_the_home_page_lists_every_page_of_the_navigation_in_its_order():
    """docs/README.md (the site's Home) links every page of mkdocs.yml's navigation, in the navigation's order."""
    nav = _read("mkdocs.yml").split("\nnav:", 1)[1].split("\n\n", 1)[0]
    pages = [p for p in re.findall(r":\s*([\w/]+\.md)\s*$", nav, flags=re.M) if p != "README.md"]
    listed = re.findall(r"^\s*\d+\. \[[^\]]+\]\(([\w/]+\.md)\)", _read("docs", "README.md"), flags=re.M)
    assert listed == pages


def _paired_rows(summary):
    rows = []
    for name, c in summary["paired"].items():
        numbers = f"{c['mean']:+.3f} [{c['interval'][0]:+.3f}, {c['interval'][1]:+.3f}]".replace("-", "−")
        rows.append(f"| {name} | {c['seeds']} | {numbers} | {c['sd']:.3f} | {c['resolvable']:.3f} |")
    return rows


@pytest.mark.parametrize("page, block, summary_file, keys", [
    ("digits.md", "bb2015-digits", "bb2015_digits_summary.json", ("log_likelihood", "is_estimate", "posterior_error")),
    ("digits.md", "bb2015-bars", "bb2015_bars_summary.json", ("log_likelihood", "is_estimate", "posterior_error")),
])
def test_the_belief_net_comparisons_are_quoted_from_their_summaries(page, block, summary_file, keys):
    """The paired study's tables in docs/digits.md, re-rendered from the summary files: every method's final
    values (mean ± the half-width of the 95 % t-interval) and every paired difference (mean [interval], sd, the
    difference resolvable at 80 % power); for the bars, the gap to the true generator's held-out likelihood."""
    summary = json.loads(_read("docs", "figures", summary_file))
    text = _block(_read("docs", page), block)
    best = None
    if "bars" in summary_file:
        from rws_ref.experiments.bb2015_bars import true_held_out
        best = true_held_out()
        assert f"{best:.3f}".replace("-", "−") in text
    for name, c in summary["final"].items():
        method, K = name.split(" K=")
        cells = [_cell(c[k], c[f"{k}_interval"]).replace("-", "−") for k in keys]
        if best is not None:
            cells.insert(1, f"{best - c['log_likelihood']:.3f}")
        row = " | ".join([method, K, *cells, f"{c['seeds']}"])
        assert f"| {row} |" in text, row
    for row in _paired_rows(summary):
        assert row in text, row


def test_the_digits_findings_quote_the_paired_summary():
    """The findings under docs/digits.md's paired table, recomputed from its summary: the seeds, RWS over WS with
    its interval and the difference the design resolves, each q-update against RWS, the posterior errors."""
    summary = json.loads(_read("docs", "figures", "bb2015_digits_summary.json"))
    text = _read("docs", "digits.md").split("<!-- /bb2015-digits -->", 1)[1].split("## The bars problem", 1)[0]
    head = _read("docs", "digits.md").split("<!-- bb2015-digits -->", 1)[0]
    fmt = lambda v: f"{v:.3f}"                                                        # noqa: E731
    signed = lambda v: f"{v:+.3f}".replace("-", "−")                                  # noqa: E731
    paired, final = summary["paired"], summary["final"]
    ws, wake, sleep = (paired[f"{m} K={k} − RWS K=5"] for m, k in (("WS", 1), ("RWS-wake", 5), ("RWS-sleep", 5)))
    n = summary["seeds"]
    assert summary["budget"] == 1.0 and f"(16 latent bits, {n} seeds, full budget)" in head and f"--seeds {n} " in head
    assert f"with {n} seeds the" in text
    assert f"ends {fmt(-ws['mean'])} nats per image above WS" in text
    assert f"[{fmt(-ws['interval'][1])}, {fmt(-ws['interval'][0])}]" in text
    assert f"design resolves {fmt(ws['resolvable'])} nats" in text
    assert f"({fmt(wake['resolvable'])} and {fmt(sleep['resolvable'])})" in text
    assert max(ws["resolvable"], wake["resolvable"], sleep["resolvable"]) <= 0.1     # "every comparison resolves 0.1"
    assert f"ends {fmt(wake['mean'])} above wake + sleep, [{signed(wake['interval'][0])}, " \
           f"{signed(wake['interval'][1])}]" in text
    assert wake["interval"][0] < 0 < wake["interval"][1] and sleep["interval"][0] < 0 < sleep["interval"][1]
    assert f"{fmt(-sleep['mean'])} below, [{signed(sleep['interval'][0])}, {signed(sleep['interval'][1])}]" in text
    errors = [final[f"{m} K=5"]["posterior_error"] for m in ("RWS-wake", "RWS", "RWS-sleep")]
    assert f"error {fmt(errors[0])} against {fmt(errors[1])} and {fmt(errors[2])}" in text


def _prose(text):
    """A page's prose: without code blocks (fenced or indented), typeset formulas, code spans and link targets."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"^(    |\t).*$", "", text, flags=re.M)
    text = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    text = re.sub(r"\$[^$\n]+\$", "", text)
    text = re.sub(r"`[^`\n]+`", "", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


RAW_TEX = re.compile(r"\S*(?:\^\{|_\{|\\[a-zA-Z]+|\w\^[\w(−-])\S*")


@pytest.mark.parametrize("page", sorted(p for p in os.listdir(os.path.join(ROOT, "docs")) if p.endswith(".md")))
def test_no_page_has_raw_tex_in_its_prose(page):
    """Every formula written with TeX syntax (x^{…}, E_{…}, \\nabla, K^2) is typeset ($…$ or $$…$$, which the site
    turns into MathML), never left as raw TeX in the text; Unicode notation (q_φ, ∇_θ, Σ_k) stays plain."""
    assert RAW_TEX.findall(_prose(_read("docs", page))) == []


def test_the_raw_tex_test_sees_raw_tex_and_nothing_else():
    assert RAW_TEX.findall(_prose("the bias as K^{1/2} and E_{p(x)} or \\nabla_φ, S^K tuples")) == [
        "K^{1/2}", "E_{p(x)}", "\\nabla_φ,", "S^K"]
    assert RAW_TEX.findall(_prose("typeset $K^{1/2}$ and\n$$\n\\sum_s q_s\n$$\nin `z^{k}` or q_φ(z|x), Σ_k w̄_k")) == []


def test_the_chapters_notebooks_are_made_from_the_current_pages():
    """docs/notebooks/*.ipynb are what docs/make_notebooks.py makes from the chapters now (regenerate after an
    edit); every chapter of the course with an example has one; a notebook's code cells are the page's examples."""
    import sys
    sys.path.insert(0, os.path.join(ROOT, "docs"))
    try:
        spec = importlib.util.spec_from_file_location("make_notebooks", os.path.join(ROOT, "docs", "make_notebooks.py"))
        make = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(make)
    finally:
        sys.path.remove(os.path.join(ROOT, "docs"))
    nav = _read("mkdocs.yml").split("The course:", 1)[1].split("  - Checking", 1)[0]
    with_examples = [p for p in re.findall(r":\s*([\w/]+\.md)\s*$", nav, flags=re.M)
                     if "```python\n>>> " in _read("docs", p)]
    assert list(make.CHAPTERS) == with_examples
    for chapter in make.CHAPTERS:
        assert _read("docs", "notebooks", chapter.replace(".md", ".ipynb")) == make.render(chapter), chapter
        cells = json.loads(make.render(chapter))["cells"]
        assert sum(c["cell_type"] == "code" for c in cells) == _read("docs", chapter).count("```python\n>>> ")
    assert make.expected_last("x = 1\nx + 1\n# → 2") == "2" and make.expected_last("print(3)") is None
