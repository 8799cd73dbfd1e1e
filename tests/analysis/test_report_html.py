"""report.html in a real browser (headless Chromium through Selenium).

One small run, with hostile model text injected into its shard file, is analysed once; one
browser opens the report from file:// and every test reloads it. Skipped when Chromium,
chromedriver or Selenium is missing, unless EMOTAU_REQUIRE_BROWSER=1 (CI), which makes that a
failure.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import emotau
from helpers import emotau as emotau_cli

pytestmark = pytest.mark.browser

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError:
    webdriver = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

_missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
if webdriver is None:
    _missing.append("the selenium package (pip install -e '.[dev]')")
if _missing:
    _reason = "browser tests need " + ", ".join(_missing)
    if os.environ.get("EMOTAU_REQUIRE_BROWSER") == "1":
        pytest.fail(f"EMOTAU_REQUIRE_BROWSER=1 but {_reason}", pytrace=False)
    pytest.skip(_reason, allow_module_level=True)

HOSTILE_USER = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> I want a refund'
HOSTILE_RESULT = "</script><script>window.__xss=3</script>"
HOSTILE_ARG = "<!--<script>window.__xss=4</script>"
HOSTILE_ERROR = "<b onmouseover=alert(1)>boom</b>"
HOSTILE_KEY = (0, "control", 0)  # (task, variant, trial): the customer text and tool result
INFRA_KEY = (2, "confusion", 1)  # turned into an infrastructure error
VARIANTS = ["control", "anger", "confusion"]
WIDTH, HEIGHT = 1280, 1000


# --------------------------------------------------------------------------- fixtures
def _key(rec: dict[str, Any]) -> tuple[int, str, int]:
    return (rec["task_id"], rec["variant"], rec["trial"])


def _inject(run_dir: Path) -> None:
    shards = sorted((run_dir / "episodes").glob("shard-*.jsonl"))
    assert shards, "the run wrote no shard file"
    found = set()
    for shard in shards:
        recs = [json.loads(line) for line in shard.read_text(encoding="utf-8").splitlines()]
        for rec in recs:
            if _key(rec) == HOSTILE_KEY:
                user = next(t for t in rec["turns"] if t["role"] == "user")
                user["content"] = HOSTILE_USER
                agent = next(t for t in rec["turns"] if t["role"] == "agent" and t["tool_calls"])
                call = agent["tool_calls"][0]
                call["result"] = HOSTILE_RESULT
                call["arguments"] = {"note": HOSTILE_ARG}
                found.add("hostile")
            elif _key(rec) == INFRA_KEY:
                rec.update(
                    status="infra_error",
                    scored=False,
                    reward=None,
                    success=False,
                    reward_breakdown=None,
                    termination="infra_error",
                    error=HOSTILE_ERROR,
                )
                found.add("infra")
        shard.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8"
        )
    assert found == {"hostile", "infra"}, found


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report_html")
    run = emotau.run(
        {"variants": VARIANTS},
        out=str(base / "runs"),
        experiment_name="hostile",
        num_trials=2,
        tasks=3,
        progress="none",
    )
    _inject(run.path)
    out = base / "report"
    p = emotau_cli("analyze", str(run.path), "--out", str(out), "--bootstrap", "200")
    assert p.returncode == 0, p.stderr
    page = out / "report.html"
    assert page.is_file()
    return page


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chrome-profile")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},{HEIGHT}",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    d.set_page_load_timeout(30)
    try:
        yield d
    finally:
        d.quit()


def _severe(d: webdriver.Chrome) -> list[dict[str, Any]]:
    """SEVERE browser console entries since the last call (JS errors, CSP violations)."""
    return [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]


@pytest.fixture
def page(driver: webdriver.Chrome, report: Path) -> Iterator[webdriver.Chrome]:
    """The report freshly loaded (filters reset); afterwards, the console must be clean."""
    driver.get(report.as_uri())
    yield driver
    severe = _severe(driver)
    assert not severe, f"browser console errors: {severe}"


def _data(d: webdriver.Chrome) -> dict[str, Any]:
    return json.loads(d.execute_script("return document.getElementById('episodes-data').text"))


def _rows(d: webdriver.Chrome) -> list[list[str]]:
    return d.execute_script(
        "return Array.from(document.querySelectorAll('#episode-list tbody tr'))"
        ".map(tr => Array.from(tr.cells).map(c => c.textContent))"
    )


def _click_row(d: webdriver.Chrome, task: int, variant: str, trial: int) -> None:
    for tr in d.find_elements(By.CSS_SELECTOR, "#episode-list tbody tr"):
        cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        if cells[:3] == [str(task), variant, str(trial)]:
            tr.click()
            return
    raise AssertionError(f"no row for task {task}, {variant}, trial {trial}")


def _xss(d: webdriver.Chrome) -> Any:
    return d.execute_script("return [typeof window.__xss, window.__xss === undefined]")


def _outcome(e: dict[str, Any]) -> str:
    return {True: "success", False: "failure", None: "not scored"}[e["success"]]


# --------------------------------------------------------------------------- tests
def test_loads_without_console_errors(page: webdriver.Chrome) -> None:
    assert _severe(page) == []
    data = _data(page)
    assert len(data["episodes"]) == 3 * len(VARIANTS) * 2
    assert page.find_element(By.ID, "episode-count").text == "18 of 18 episodes"
    assert len(_rows(page)) == 18
    # the first episode is shown on load
    assert page.find_elements(By.CSS_SELECTOR, "#conv-left div.msg")
    page.execute_script("document.getElementById('f-variant').dispatchEvent(new Event('change'))")
    assert _severe(page) == []


def test_hostile_text_never_runs(page: webdriver.Chrome) -> None:
    assert _xss(page) == ["undefined", True]
    _click_row(page, *INFRA_KEY)
    _click_row(page, *HOSTILE_KEY)
    Select(page.find_element(By.ID, "compare-variant")).select_by_value("control")
    assert _xss(page) == ["undefined", True]
    # nothing injected became an element or an event handler
    imgs = page.execute_script("return Array.from(document.images).map(i => i.getAttribute('src'))")
    assert all(src.startswith("data:image/png;base64,") for src in imgs), imgs
    assert not any(src.endswith("x") for src in imgs)
    handlers = "return document.querySelectorAll('[onerror],[onmouseover],[onload]').length"
    assert page.execute_script(handlers) == 0
    assert page.execute_script("return document.scripts.length") == 2


def test_hostile_text_shows_verbatim(page: webdriver.Chrome) -> None:
    _click_row(page, *HOSTILE_KEY)
    left = page.find_element(By.ID, "conv-left")
    head = left.find_element(By.CSS_SELECTOR, "div.head").text
    assert head.startswith("control - task 0, trial 0")
    texts = [
        e.get_property("textContent")
        for e in left.find_elements(By.CSS_SELECTOR, "div.msg.user span.text")
    ]
    assert HOSTILE_USER in texts
    tools = [e.get_property("textContent") for e in left.find_elements(By.CSS_SELECTOR, "div.tool")]
    assert any(t.endswith("-> " + HOSTILE_RESULT) for t in tools), tools
    assert any(json.dumps(HOSTILE_ARG) in t for t in tools), tools
    assert HOSTILE_USER in left.text  # rendered on screen, not just in the DOM


def test_infra_error_is_literal_text(page: webdriver.Chrome) -> None:
    cells = page.execute_script(
        "return Array.from(document.querySelectorAll('#completeness td')).map(c => c.textContent)"
    )
    assert HOSTILE_ERROR in cells
    row = page.execute_script(
        "var td = Array.from(document.querySelectorAll('#completeness td'))"
        ".find(c => c.textContent === arguments[0]);"
        "return Array.from(td.parentNode.cells).map(c => c.textContent)",
        HOSTILE_ERROR,
    )
    assert row == [str(INFRA_KEY[0]), INFRA_KEY[1], str(INFRA_KEY[2]), HOSTILE_ERROR]
    assert not page.find_elements(By.CSS_SELECTOR, "#completeness b, main b[onmouseover]")
    # and in the conversation browser
    _click_row(page, *INFRA_KEY)
    err = page.find_element(By.CSS_SELECTOR, "#conv-left div.tool.err")
    assert err.get_property("textContent") == "error: " + HOSTILE_ERROR


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_filter(page: webdriver.Chrome, variant: str) -> None:
    data = _data(page)
    expected = sum(1 for e in data["episodes"] if e["variant"] == variant)
    Select(page.find_element(By.ID, "f-variant")).select_by_value(variant)
    rows = _rows(page)
    assert len(rows) == expected == 6
    assert all(r[1] == variant for r in rows)
    assert page.find_element(By.ID, "episode-count").text == f"{expected} of 18 episodes"


@pytest.mark.parametrize("outcome", ["success", "failure", "not scored"])
def test_outcome_filter(page: webdriver.Chrome, outcome: str) -> None:
    eps = _data(page)["episodes"]
    expected = sorted(
        [str(e["task_id"]), e["variant"], str(e["trial"])] for e in eps if _outcome(e) == outcome
    )
    if outcome == "not scored":
        assert expected == [[str(x) for x in INFRA_KEY]]
    Select(page.find_element(By.ID, "f-outcome")).select_by_value(outcome)
    rows = _rows(page)
    assert sorted(r[:3] for r in rows) == expected
    assert all(r[3] == outcome for r in rows)
    assert page.find_element(By.ID, "episode-count").text == f"{len(expected)} of 18 episodes"


def test_filters_combine(page: webdriver.Chrome) -> None:
    Select(page.find_element(By.ID, "f-variant")).select_by_value("anger")
    Select(page.find_element(By.ID, "f-task")).select_by_value("1")
    rows = _rows(page)
    assert sorted(r[:3] for r in rows) == [["1", "anger", "0"], ["1", "anger", "1"]]
    assert page.find_element(By.ID, "episode-count").text == "2 of 18 episodes"


def test_side_by_side(page: webdriver.Chrome) -> None:
    eps = _data(page)["episodes"]
    _click_row(page, 1, "control", 0)
    Select(page.find_element(By.ID, "compare-variant")).select_by_value("anger")
    left = page.find_element(By.CSS_SELECTOR, "#conv-left div.head").text
    right = page.find_element(By.CSS_SELECTOR, "#conv-right div.head").text
    assert left.startswith("control - task 1, trial 0:"), left
    assert right.startswith("anger - task 1, trial 0:"), right
    anger = next(e for e in eps if (e["task_id"], e["variant"], e["trial"]) == (1, "anger", 0))
    shown = page.find_elements(By.CSS_SELECTOR, "#conv-right div.msg")
    assert len(shown) == len(anger["turns"])
    first_user = next(t["content"] for t in anger["turns"] if t["role"] == "user")
    assert shown[0].find_element(By.CSS_SELECTOR, "span.text").text == first_user.strip()
    # the selected row is highlighted
    sel = page.find_elements(By.CSS_SELECTOR, "#episode-list tbody tr.sel")
    assert [[td.text for td in sel[0].find_elements(By.TAG_NAME, "td")][:3]] == [
        ["1", "control", "0"]
    ]


def test_plots_decode(page: webdriver.Chrome) -> None:
    for name in ("success", "pass_k", "task_heatmap", "emotion_turns"):
        ok, width, height = page.execute_script(
            "var i = document.getElementById(arguments[0]);"
            "return i ? [i.complete, i.naturalWidth, i.naturalHeight] : [false, 0, 0]",
            f"plot-{name}",
        )
        assert ok and width > 100 and height > 100, (name, width, height)


def _screenshot(page: webdriver.Chrome) -> bytes:
    """A PNG of the viewport. Chromium's capture can time out on a loaded machine (seen once
    in a full parallel run: "timeout from aborted by navigation"); that says nothing about the
    report, so it is asked again, once, after the page says it has loaded."""
    from selenium.common.exceptions import TimeoutException

    try:
        return page.get_screenshot_as_png()
    except TimeoutException:
        assert page.execute_script("return document.readyState") == "complete"
        return page.get_screenshot_as_png()


def test_screenshot_is_not_blank(page: webdriver.Chrome, report: Path) -> None:
    import matplotlib.image as mpimg  # a dependency of the report's plots

    png = _screenshot(page)
    (report.parent / "screenshot-top.png").write_bytes(png)
    w, h, ratio = page.execute_script(
        "return [window.innerWidth, window.innerHeight, window.devicePixelRatio]"
    )
    img = mpimg.imread(io.BytesIO(png), format="png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert img.shape[:2] == (round(h * ratio), round(w * ratio)), (img.shape, w, h, ratio)
    rgb = (img[..., :3] * 255).round().astype("uint8").reshape(-1, 3)
    colours = len({tuple(p) for p in rgb[:: max(1, len(rgb) // 50_000)]})
    non_white = (rgb.min(axis=1) < 240).mean()
    assert colours > 20, colours
    assert non_white > 0.05, non_white
    # the conversation browser, for a person to look at
    _click_row(page, *HOSTILE_KEY)
    page.execute_script("document.getElementById('browser').scrollIntoView()")
    page.save_screenshot(str(report.parent / "screenshot-browser.png"))


def test_self_contained(page: webdriver.Chrome, report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)""", text, re.I)
    style = text.split("<style>", 1)[1].split("</style>", 1)[0]
    assert not re.search(r"@import|url\(", style, re.I)
    csp = page.execute_script(
        "var m = document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]');"
        "return m && m.content"
    )
    assert csp and "default-src 'none'" in csp, csp
    attrs = page.execute_script(
        "return Array.from(document.querySelectorAll('[src],[href]'))"
        ".map(e => e.getAttribute('src') || e.getAttribute('href'))"
    )
    assert attrs and all(a.startswith(("data:", "#")) for a in attrs), attrs
    fetched = page.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name)"
        ".filter(n => !n.startsWith('data:'))"
    )
    assert fetched == []
    # the embedded JSON cannot close its script element or open a comment
    blob = text.split('id="episodes-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in blob and HOSTILE_RESULT not in text


def test_csp_blocks_injected_handlers_even_if_markup_got_in(page: webdriver.Chrome) -> None:
    """Defence in depth: were model text ever parsed as markup, the page's CSP (a hash for
    its one script, no 'unsafe-inline') refuses inline event handlers and scripts."""
    page.execute_script(
        "var d = document.createElement('div');"
        'd.innerHTML = \'<img src="data:,x" onerror="window.__csp=1">'
        '<img src="data:image/png;base64,AAAA" onerror="window.__csp=2">\';'
        "document.body.appendChild(d);"
    )
    time.sleep(0.5)
    assert page.execute_script("return typeof window.__csp") == "undefined"
    violations = _severe(page)  # drained here, so the fixture's check stays meaningful
    assert any("Content Security Policy" in e.get("message", "") for e in violations), violations
