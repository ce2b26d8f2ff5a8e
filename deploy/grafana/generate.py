#!/usr/bin/env python3
"""Writes sfc.json: the Grafana dashboard JSON that grafyaml makes from sfc.yaml.

grafyaml has no command that writes JSON (`grafana-dashboard update` posts it to a Grafana), so
this calls the two pieces `update` uses: its parser (schema, defaults) for the dashboard model,
and the uid it derives from the title's slug before posting. The result is what
`grafana-dashboard update` would store, and can be imported into Grafana as it is.

Run with the Python of grafyaml's venv (`cargo xtask setup` makes it under the target
directory):  target/grafyaml/bin/python deploy/grafana/generate.py
`--stdout` prints the JSON instead of writing sfc.json (the suite compares it with the file).
"""

import json
import pathlib
import sys

from grafana_dashboards.grafana.dashboard import Dashboard
from grafana_dashboards.parser import YamlParser

HERE = pathlib.Path(__file__).resolve().parent


def generate(yaml_path):
    parser = YamlParser()
    parser.parse(str(yaml_path))
    slugs = list(parser.data.get("dashboard", {}))
    if len(slugs) != 1:
        sys.exit(f"{yaml_path}: expected one dashboard, found {slugs}")
    model, _ = parser.get_dashboard(slugs[0])
    # What Dashboard.create adds before it posts the model.
    model["uid"] = Dashboard(url="", session=None).dashboard_uid(slugs[0])
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main():
    text = generate(HERE / "sfc.yaml")
    if sys.argv[1:] == ["--stdout"]:
        sys.stdout.write(text)
    elif sys.argv[1:]:
        sys.exit(f"usage: {sys.argv[0]} [--stdout]")
    else:
        (HERE / "sfc.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
