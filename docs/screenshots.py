"""Writes the README's screenshots (docs/screenshots/*.png) from the real service, as a new user sees it.

Follows the README's walk-through in a fresh CROSSWALK_HOME: loads the sample LOINC table, creates the
"St Mary LIS" project, imports data/samples/lab_codes.csv and suggests with the bundled MiniLM model; a
reviewer approves the top suggestions that are right and releases them (release 1), approves five more,
remaps the one the model ranks wrong and creates release 2 in the browser; a feed of the Synthea lab sample gets three batches (one with body
weight in pounds at site south). Then `crosswalk serve` runs and Debian's Chromium, driven by
Playwright, takes the queue, an item, the release diff, the ops page and an alert at 1280x800.

    python docs/screenshots.py [--out docs/screenshots]

Model caches: with CROSSWALK_HOME set, its `cache/` (the ONNX export, embeddings) is shared with the
fresh home, so a second run encodes nothing; nothing else is written there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.api import server  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, feed_batches  # noqa: E402

PROJECT = "St Mary LIS"
# Codes whose top suggestion a reviewer approves, each with the LOINC code the flowsheet the sample comes
# from maps it to (../shared/data/labs-loinc): an approval that would take another target stops the script.
RELEASE_1 = {"33": "2345-7", "11428": "2951-2", "11429": "2823-3", "6145": "2160-0", "11444": "1742-6"}
RELEASE_2 = {"1276": "3094-0", "593": "2093-3", "60": "718-7", "8826": "2571-8", "31105": "2093-3"}
# "Glucose (ACA)": the model ranks glucose in blood first; the flowsheet maps it to serum/plasma.
REMAP = ("4035", "2345-7")
SHOWN_ITEM = "24588"  # "Glucose Bld Qn": glucose in blood first, the serum/plasma concept next
VIEWPORT = {"width": 1280, "height": 800}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots", help="Folder for the PNGs.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = _environment(home)
        tokens = _prepare(home, env, Path(tmp))
        with server(env["CROSSWALK_DATABASE_URL"], home, real=True) as base:
            print(f"crosswalk serve on {base}: deciding, then Chromium takes the screenshots", file=sys.stderr)
            _decide(base, tokens["reviewer"])
            _browse(base, tokens, args.out)
    print(f"wrote 5 screenshots to {args.out}", file=sys.stderr)


def _environment(home: Path) -> dict[str, str]:
    home.mkdir(mode=0o700)
    shared = os.environ.get("CROSSWALK_HOME")
    if shared and (Path(shared) / "cache").is_dir():
        (home / "cache").symlink_to(Path(shared) / "cache")  # content-keyed, written atomically: safe to share
    os.environ.update(CROSSWALK_HOME=str(home), CROSSWALK_DATABASE_URL=f"sqlite:///{home / 'crosswalk.db'}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return {**os.environ, "PYTHONPATH": str(REPO)}


def crosswalk(env: dict[str, str], *args: str) -> str:
    """One CLI command as the README shows it; its output, or the script stops with its error."""
    print(f"$ crosswalk {' '.join(args)}", file=sys.stderr)
    command = [sys.executable, "-c", "from service.cli import main; main()", *args]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"crosswalk {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _prepare(home: Path, env: dict[str, str], tmp: Path) -> dict[str, str]:
    crosswalk(
        env, "terminology", "load", "--format", "loinc", "data/samples/terminologies/loinc/Loinc.csv", "--name", "loinc"
    )
    crosswalk(
        env,
        "project",
        "create",
        "--name",
        PROJECT,
        "--source-system",
        "St Mary LIS local lab codes",
        "--target",
        "loinc",
    )
    crosswalk(env, "project", "import", "-p", PROJECT, "data/samples/lab_codes.csv")
    crosswalk(env, "project", "suggest", "-p", PROJECT, "--top", "5")
    reference, batches = feed_batches()
    reference.to_csv(tmp / "reference.csv", index=False)
    crosswalk(env, "feed", "create", "st-mary-labs", "--reference", str(tmp / "reference.csv"), "--segment", "site")
    for name, batch in batches:
        batch.to_csv(tmp / name, index=False)
    crosswalk(env, "feed", "post", "st-mary-labs", *(str(tmp / name) for name, _ in batches))
    return {
        role: crosswalk(env, "token", "create", "--name", name, "--role", role).strip().splitlines()[-1]
        for role, name in (("reviewer", "alice"), ("ops", "oscar"))
    }


def _decide(base: str, reviewer: str) -> None:
    """Release 1 through the API, then the decisions release 2 will hold; each approval is checked to
    take the target named above, so a screenshot never shows a wrong mapping as approved."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {reviewer}"}, timeout=120) as api:
        project = next(p["id"] for p in _ok(api.get("/projects")) if p["name"] == PROJECT)
        for code, target in RELEASE_1.items():
            _approve(api, project, code, target)
        _ok(api.post(f"/projects/{project}/releases", json={"note": "first review"}))
        for code, target in RELEASE_2.items():
            _approve(api, project, code, target)
        code, target = REMAP
        _decision(api, project, code, {"action": "remap", "target_code": target, "comment": "serum, as the flowsheet"})


def _approve(api: httpx.Client, project: int, code: str, target: str) -> None:
    item = _decision(api, project, code, {"action": "approve"})
    if item["target_code"] != target:
        raise SystemExit(f"{code}: the model's top suggestion is {item['target_code']}, not {target}")


def _decision(api: httpx.Client, project: int, code: str, body: dict) -> dict:
    version = _ok(api.get(f"/projects/{project}/items/{code}"))["version"]
    return _ok(api.post(f"/projects/{project}/items/{code}/decisions", json=body, headers={"If-Match": f'"{version}"'}))


def _ok(response: httpx.Response):
    if response.is_error:
        raise SystemExit(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json()


def _browse(base: str, tokens: dict[str, str], out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        _login(page, base, tokens["reviewer"], "/ui/projects/1")
        page.screenshot(path=str(out / "queue.png"))
        page.goto(f"{base}/ui/projects/1/review?code={SHOWN_ITEM}")
        page.screenshot(path=str(out / "item.png"))
        page.goto(f"{base}/ui/projects/1/releases")
        page.get_by_label("Note").fill("second review")
        with page.expect_navigation():
            page.get_by_role("button", name="Create release").click()
        page.screenshot(path=str(out / "release-diff.png"))
        with page.expect_navigation():
            page.get_by_role("button", name="Sign out").click()
        _login(page, base, tokens["ops"], "/ui/ops")
        page.screenshot(path=str(out / "ops.png"))
        link = page.locator("table.alerts tr", has=page.locator(".sev-critical")).first.locator("td a")
        with page.expect_navigation():
            link.click()
        page.frame_locator("iframe.report").locator("body").wait_for()  # the Evidently report, in its sandbox
        page.screenshot(path=str(out / "ops-alert.png"))
        browser.close()


def _login(page, base: str, token: str, path: str) -> None:
    page.goto(base + path)
    page.fill("#token", token)
    with page.expect_navigation():
        page.keyboard.press("Enter")


if __name__ == "__main__":
    main()
