"""The tables of docs/checking.md's section "How much each level can be trusted", rendered from the
measurement files the benchmarks write (tests/test_docs.py renders them again and checks the page holds them):

- docs/figures/false_failures.json   benchmarks/false_failures.py: a correct implementation, every kind on every
                                     pair and protocol variant, many seeds;
- docs/figures/end_to_end.json       benchmarks/end_to_end.py: the planted sampling bugs and the correct
                                     estimators through check_stochastic and the sampler checks;
- docs/figures/stochastic_power.json benchmarks/stochastic_power.py: check_stochastic's predicted detection
                                     probability against the measured rate;
- docs/figures/check_cost.json       benchmarks/check_cost.py: what a check costs, before and after.

Run:  python benchmarks/trust.py [--write]     (prints the tables; --write puts each into its marked block
                                              <!-- name --> … <!-- /name --> of docs/checking.md)
"""
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"


def _load(name):
    return json.loads((FIGURES / name).read_text())


def false_failures():
    data = _load("false_failures.json")
    s = data["summary"]
    by = ", ".join(f"{name} ({n})" for name, n in sorted(s["by_property"].items())) or "none"
    # the sampler checks are the same for every kind on one pair and seed: a chance failure repeats across kinds
    where = {}
    for row in data["rows"]:
        if row["failures"]:
            seeds, kinds = where.get(row["pair"], (0, 0))
            where[row["pair"]] = (max(seeds, row["failures"]), kinds + 1)
    at = "; ".join(f"{pair}: {seeds} of {s['seeds']} seeds, in {kinds} kind × form rows"
                   for pair, (seeds, kinds) in sorted(where.items())) or "—"
    lines = ["| checks | failed | rate | 99.9 % upper limit | stated bound | failed properties | where |",
             "|---|---|---|---|---|---|---|",
             f"| {s['checks']:,} ({s['combinations']} kind × pair × form, {s['seeds']} seeds) | {s['failures']} | "
             f"{s['rate']:.2e} | {s['upper_99_9']:.2e} | {s['stated_bound']:.0e} | {by} | {at} |"]
    return "\n".join(lines)


def end_to_end():
    data = _load("end_to_end.json")
    lines = [f"| implementation | failed (of {data['seeds']} seeds) | s per check |", "|---|---|---|"]
    lines += [f"| {r['implementation']} | {r['failed']} | {r['seconds_per_check']:.2f} |" for r in data["rows"]]
    return "\n".join(lines)


def stochastic_power():
    data = _load("stochastic_power.json")
    lines = [f"| case | R | measured detection ({data['seeds']} seeds) | predicted | power: most / median / least "
             "sensitive entry |", "|---|---|---|---|---|"]
    for r in data["rows"]:
        best, median, worst = r["relative_power"]
        lines.append(f"| {r['case']} | {r['replicates']:,} | {r['measured']:.2f} | {r['predicted']:.3f} | "
                     f"{best:.2g} / {median:.2g} / {worst:.2g} |")
    return "\n".join(lines)


def check_cost():
    data = _load("check_cost.json")
    after, before = data["after"]["check_estimator"], data.get("before", {}).get("check_estimator", {})
    lines = ["| kind | calls of the estimator per check, after | s | before | s |", "|---|---|---|---|---|"]
    for kind, a in after.items():
        b = before.get(kind)
        lines.append(f"| {kind} | {a['calls']:,.0f} | {a['seconds']:.2f} | "
                     + (f"{b['calls']:,.0f} | {b['seconds']:.2f} |" if b else "— | — |"))
    s = data["after"]["check_stochastic"]
    lines.append(f"\ncheck_stochastic (R = {s['replicates']:,}): {s['first']:.2f} × R calls of the user's function "
                 f"(the exact moments once per setting, then cached: {s['repeated']:.2f} × R).")
    return "\n".join(lines)


TABLES = {"false_failures": false_failures, "end_to_end": end_to_end, "stochastic_power": stochastic_power,
          "check_cost": check_cost}


PAGE = ROOT / "docs" / "checking.md"


def block(text, name):
    """The text between <!-- name --> and <!-- /name --> in ``text`` (None when the block is missing)."""
    match = re.search(rf"<!-- {name} -->\n(.*?)<!-- /{name} -->", text, flags=re.S)
    return None if match is None else match.group(1)


def write():
    text = PAGE.read_text()
    for name, render in TABLES.items():
        if block(text, name) is None:
            raise SystemExit(f"docs/checking.md has no block <!-- {name} --> … <!-- /{name} -->")
        text = re.sub(rf"(<!-- {name} -->\n).*?(<!-- /{name} -->)", lambda m: m.group(1) + render() + "\n"
                      + m.group(2), text, flags=re.S)
    PAGE.write_text(text)


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        write()
    for name, render in TABLES.items():
        print(f"<!-- {name} -->\n{render()}\n")
