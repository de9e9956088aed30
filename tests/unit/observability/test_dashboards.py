"""Dashboards as code: up to date, structurally sound, pushable to a Grafana HTTP API."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.cli.main import main
from driftline.config import config_from_dict
from driftline.observability import dashboards
from driftline.observability.metrics import WorkerMetrics
from driftline.runtime.localkafka import PROJECT_ROOT

DIR = PROJECT_ROOT / "dashboards"
DOCS = {name: json.loads((DIR / name).read_text()) for name in dashboards.DASHBOARDS}
GRAFANA_VARIABLES = {"__rate_interval", "__range", "__interval", "__data", "__url_time_range"}


def test_checked_in_dashboards_are_what_the_generator_writes() -> None:
    assert dashboards.stale(DIR) == [], "run `driftline dashboards generate`"


def test_generate_check_fails_on_a_stale_file(tmp_path: Path, capsys: Any) -> None:
    assert main(["dashboards", "generate", "--dir", str(tmp_path)]) == 0
    assert main(["dashboards", "generate", "--check", "--dir", str(tmp_path)]) == 0
    path = tmp_path / "driftline-model.json"
    path.write_text(path.read_text().replace("Features drifting", "Features drifting!"))
    assert main(["dashboards", "generate", "--check", "--dir", str(tmp_path)]) == 1
    assert "driftline-model.json" in capsys.readouterr().err


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(dashboards._all_panels(doc))


@pytest.mark.parametrize("name", sorted(DOCS))
def test_panel_ids_are_unique_and_panels_fit_the_grid_without_overlap(name: str) -> None:
    doc = DOCS[name]
    ids = [p["id"] for p in panels(doc)]
    assert len(ids) == len(set(ids)) and len(ids) > 5
    cells: set[tuple[int, int]] = set()
    for p in panels(doc):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not area & cells, f"{p['title']} overlaps another panel"
        cells |= area


@pytest.mark.parametrize("name", sorted(DOCS))
def test_datasources_resolve_and_every_variable_used_exists(name: str) -> None:
    doc = DOCS[name]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    refs = [p.get("datasource") for p in panels(doc) if p["type"] != "row"]
    refs += [t.get("datasource") for p in panels(doc) for t in p.get("targets", [])]
    refs += [a["datasource"] for a in doc["annotations"].get("list", [])]
    refs += [v["datasource"] for v in variables.values() if v["type"] == "query"]
    for ref in refs:
        if ref is None:  # a target without its own: the panel's datasource
            continue
        assert ref == {"type": "prometheus", "uid": "${datasource}"}
    text = json.dumps(doc)
    used = set(re.findall(r"\$\{?(\w+)", text))
    assert used - GRAFANA_VARIABLES <= set(variables), used - GRAFANA_VARIABLES - set(variables)
    for where, expr in dashboards.queries(doc):
        assert expr.strip(), where


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_panel_has_a_query_a_title_and_a_description(name: str) -> None:
    for p in panels(DOCS[name]):
        if p["type"] == "row":
            continue
        assert p["title"] and p.get("description"), p
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(refs), p["title"]


def test_every_metric_the_dashboards_use_is_one_the_worker_exports() -> None:
    config = config_from_dict({"models": {"m": {"task": "binary", "features": {"x": "numeric"}}}})
    metrics = WorkerMetrics(config)  # its own registry: with the process collector
    suffixes = ("", "_total", "_bucket", "_count", "_sum")
    exported = {f.name + x for f in metrics.registry.collect() for x in suffixes}
    exported |= {s.name for f in metrics.registry.collect() for s in f.samples}
    used = {
        m
        for doc in DOCS.values()
        for _, expr in dashboards.queries(doc)
        for m in re.findall(r"\b(?:driftline|process)_[a-z_]+", expr)
    }
    assert len(used) > 10
    assert used <= exported, used - exported


def test_the_model_dashboard_is_templated_by_model_and_links_resolve() -> None:
    model = DOCS["driftline-model.json"]
    assert model["uid"] == dashboards.MODEL_UID
    exprs = [e for w, e in dashboards.queries(model) if not w.startswith("variable")]
    assert all('model="$model"' in e for e in exprs), [e for e in exprs if "$model" not in e]
    uids = {d["uid"] for d in DOCS.values()}
    assert len(uids) == 3
    for doc in DOCS.values():
        for p in panels(doc):
            for link in p.get("fieldConfig", {}).get("defaults", {}).get("links", []):
                assert re.match(r"/d/([\w-]+)", link["url"]).group(1) in uids  # type: ignore[union-attr]


def test_provisioning_points_grafana_at_the_dashboards_and_prometheus() -> None:
    provider = yaml.safe_load((DIR / "provisioning/dashboards/driftline.yml").read_text())
    (entry,) = provider["providers"]
    assert entry["type"] == "file" and entry["options"]["path"].startswith("/var/lib/grafana/")
    source = yaml.safe_load((DIR / "provisioning/datasources/prometheus.yml").read_text())
    (prom,) = source["datasources"]
    assert prom["type"] == "prometheus" and prom["url"] == "http://prometheus:9090"


class FakeGrafana:
    """A loopback HTTP server answering the three Grafana API calls a push makes."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.folders: set[str] = set()
        self.status = status
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> Any:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append((self.command, self.path, dict(self.headers), body))
                return body

            def do_GET(self) -> None:
                self._record()
                if fake.status != 200:
                    return self._answer(fake.status, {"message": "invalid API key"})
                uid = self.path.rsplit("/", 1)[-1]
                if uid in fake.folders:
                    return self._answer(200, {"uid": uid})
                self._answer(404, {"message": "folder not found"})

            def do_POST(self) -> None:
                body = self._record()
                if self.path == "/api/folders":
                    fake.folders.add(body["uid"])
                    return self._answer(200, {"uid": body["uid"], "title": body["title"]})
                uid = body["dashboard"]["uid"]
                self._answer(200, {"status": "success", "uid": uid, "version": 1})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()
    yield fake
    fake.server.shutdown()


def test_push_uploads_each_dashboard_into_the_folder_with_the_token(
    grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    token = "glsa_s3cr3t-grafana-token"
    monkeypatch.setenv("GRAFANA_TOKEN", token)
    for _ in range(2):  # again: the folder exists now, the dashboards are overwritten
        assert main(["dashboards", "push", "--url", grafana.url, "--dir", str(DIR)]) == 0
    posts = [r for r in grafana.requests if r[0] == "POST"]
    assert [r[1] for r in posts].count("/api/folders") == 1
    uploads = [r[3] for r in posts if r[1] == "/api/dashboards/db"]
    assert sorted(u["dashboard"]["uid"] for u in uploads) == sorted(
        2 * [d["uid"] for d in DOCS.values()]
    )
    assert all(u["overwrite"] and u["folderUid"] == "driftline" for u in uploads)
    for upload in uploads:
        sent = upload["dashboard"]
        assert "id" not in sent and sent["panels"] == DOCS[f"{sent['uid']}.json"]["panels"]
    assert all(r[2]["Authorization"] == f"Bearer {token}" for r in grafana.requests)
    out = capsys.readouterr()
    assert "pushed 3 dashboards" in out.out and token not in out.out + out.err


def test_push_refused_says_so_without_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    fake = FakeGrafana(status=401)
    try:
        monkeypatch.setenv("GRAFANA_TOKEN", "glsa_wrong-token")
        assert main(["dashboards", "push", "--url", fake.url, "--dir", str(DIR)]) == 1
    finally:
        fake.server.shutdown()
    err = capsys.readouterr().err
    assert "refused" in err and "401" in err and "glsa_wrong-token" not in err


def test_push_rejects_credentials_in_the_url(capsys: Any) -> None:
    url = "http://admin:hunter2@127.0.0.1:9"
    assert main(["dashboards", "push", "--url", url, "--dir", str(DIR)]) == 1
    err = capsys.readouterr().err
    assert "GRAFANA_TOKEN" in err and "hunter2" not in err


def test_slack_links_open_the_model_dashboard_with_its_variable() -> None:
    from driftline.observability.notify import MODEL_DASHBOARD_UID

    assert MODEL_DASHBOARD_UID == dashboards.MODEL_UID
    names = {v["name"] for v in DOCS["driftline-model.json"]["templating"]["list"]}
    assert "model" in names  # the link sets var-model
