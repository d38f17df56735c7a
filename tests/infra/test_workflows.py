"""The GitHub Actions CI, offline: schema-valid, actionlint clean, and shaped as promised (a
workflow per member on the right paths, the suite as developers run it on a real MongoDB, images
scanned before they are pushed under immutable tags). Each check is also shown failing."""

import copy
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from devserver.routing import SERVICES
from infra_checks import REPO_ROOT, kustomize
from workflow_checks import (
    DEPENDABOT,
    IMAGES,
    SETUP,
    SUITE,
    SYSTEM,
    WORKFLOWS,
    Doc,
    actionlint,
    call_problems,
    dependabot_problems,
    github_files,
    image_problems,
    load_yaml,
    member_problems,
    pin_problems,
    run_step,
    schema_problems,
    suite_problems,
    system_problems,
)

IMAGE_SERVICES = [service.name for service in SERVICES]
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def files() -> dict[str, Doc]:
    return github_files()


def broken(files: dict[str, Doc], path: str) -> tuple[dict[str, Doc], Any]:
    """A deep copy of every file and, in it, the one to break."""
    copied = copy.deepcopy(files)
    return copied, copied[path]


def test_every_file_is_read(files: dict[str, Doc]) -> None:
    assert f"{SETUP}/action.yml" in files
    assert {SUITE, SYSTEM, IMAGES} <= set(files)
    # `on` is GitHub's key, not YAML 1.1's boolean True.
    assert all("on" in doc for path, doc in files.items() if path.startswith(WORKFLOWS))


# ---------------------------------------------------------------------------------- schemas


def test_every_workflow_and_action_passes_the_schema(files: dict[str, Doc]) -> None:
    assert schema_problems(files) == []


@pytest.mark.parametrize(
    ("path", "where", "key", "value", "expected"),
    [
        # runs-on misspelled: the job is no longer a job.
        (f"{WORKFLOWS}/system.yml", ("jobs", "lint"), "runs_on", "ubuntu-24.04", "runs_on"),
        (SUITE, ("jobs", "test"), "servics", {}, "servics"),
        (f"{WORKFLOWS}/auth.yml", ("on", "push"), "pathz", ["auth/**"], "pathz"),
        (IMAGES, ("jobs", "scan", "strategy"), "fail_fast", False, "fail_fast"),
        (f"{SETUP}/action.yml", ("runs",), "using", "composit", "composit"),
        (SUITE, ("jobs", "lint"), "timeout-minutes", "fifteen", "fifteen"),
    ],
)
def test_a_typo_is_rejected_by_the_schema(
    files: dict[str, Doc],
    path: str,
    where: tuple[str, ...],
    key: str,
    value: Any,
    expected: str,
) -> None:
    copied, target = broken(files, path)
    for step in where:
        target = target[step]
    target.pop(key.replace("_", "-"), None)
    target[key] = value
    problems = schema_problems(copied)
    assert any(p.startswith(f"{path}: ") and expected in p for p in problems), problems


def test_an_unknown_trigger_is_rejected(files: dict[str, Doc]) -> None:
    copied, workflow = broken(files, f"{WORKFLOWS}/orders.yml")
    workflow["on"]["pull_requests"] = workflow["on"].pop("pull_request")
    assert any("pull_requests" in p for p in schema_problems(copied))


@pytest.fixture(scope="module")
def dependabot() -> Doc:
    config: Doc = load_yaml((REPO_ROOT / DEPENDABOT).read_text())
    return config


def test_dependabot_keeps_every_pinned_action_current(dependabot: Doc) -> None:
    assert dependabot_problems(dependabot) == []


def test_a_broken_dependabot_config_is_reported(dependabot: Doc) -> None:
    typo = copy.deepcopy(dependabot)
    typo["updates"][0]["schedule"]["interval"] = "weekley"
    assert any("interval" in p and "weekley" in p for p in dependabot_problems(typo))
    forgotten = copy.deepcopy(dependabot)
    forgotten["updates"][0]["directories"] = ["/"]
    assert dependabot_problems(forgotten) == [
        f"{DEPENDABOT}: the actions used in /{SETUP} are never updated"
    ]


# --------------------------------------------------------------------------------- actionlint


def test_actionlint_passes(tmp_path: Path) -> None:
    result = actionlint(REPO_ROOT / ".github", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        # A misspelled key the schema would also catch, with actionlint's own words.
        (f"{WORKFLOWS}/system.yml", "runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", "runs_on"),
        # An input the action does not have (actionlint knows actions/checkout's inputs).
        (SUITE, "persist-credentials: false", "persist-credential: false", "persist-credential"),
        # An input our reusable workflow does not declare, and the required one then missing.
        (f"{WORKFLOWS}/auth.yml", "package: auth", "pakage: auth", 'input "pakage"'),
        # An input our composite action does not declare.
        (SUITE, "sync: none", "synk: none", 'input "synk"'),
        # An expression naming an input that does not exist.
        (SUITE, "inputs.package }}/src", "inputs.pakage }}/src", "pakage"),
        # A shell script that does not parse (shellcheck through actionlint).
        (IMAGES, 'run: echo "image=$REGISTRY', "run: echo image=$REGISTRY", "shellcheck"),
        # A job that needs one that is not there.
        (IMAGES, "needs: scan", "needs: scann", "scann"),
    ],
)
def test_actionlint_rejects_a_mistake(
    tmp_path: Path, path: str, old: str, new: str, expected: str
) -> None:
    source = tmp_path / "source"
    github = source / ".github"
    shutil.copytree(REPO_ROOT / ".github", github)
    target = source / path
    text = target.read_text()
    assert old in text, f"the mutation no longer applies: {old!r}"
    target.write_text(text.replace(old, new, 1))
    lint_dir = tmp_path / "lint"
    lint_dir.mkdir()
    result = actionlint(github, lint_dir)
    assert result.returncode != 0
    assert path in result.stdout and expected in result.stdout, result.stdout


# ---------------------------------------------------------------------------- uses and inputs


def test_every_action_is_pinned_and_every_call_fits(files: dict[str, Doc]) -> None:
    assert pin_problems(files) == []
    assert call_problems(files) == []


def test_an_unpinned_action_is_rejected(files: dict[str, Doc]) -> None:
    copied, workflow = broken(files, IMAGES)
    workflow["jobs"]["scan"]["steps"][0]["uses"] = "actions/checkout@v6"
    workflow["jobs"]["scan"]["steps"][1]["uses"] = "docker/setup-buildx-action@master"
    assert pin_problems(copied) == [
        f"{IMAGES}: uses actions/checkout@v6, not pinned to a full version (vX.Y.Z) or commit",
        f"{IMAGES}: uses docker/setup-buildx-action@master, "
        "not pinned to a full version (vX.Y.Z) or commit",
    ]


def test_a_missing_local_action_is_rejected(files: dict[str, Doc]) -> None:
    copied, workflow = broken(files, SYSTEM)
    workflow["jobs"]["lint"]["steps"][1]["uses"] = "./.github/actions/set-up"
    assert pin_problems(copied) == [
        f"{SYSTEM}: uses ./.github/actions/set-up, which is not in the repository"
    ]


def test_a_wrong_input_to_our_workflow_or_action_is_rejected(files: dict[str, Doc]) -> None:
    copied, tickets = broken(files, f"{WORKFLOWS}/tickets.yml")
    tickets["jobs"]["suite"]["with"] = {"pakage": "tickets", "chromium": "yes"}
    suite = copied[SUITE]
    suite["jobs"]["test"]["steps"][1]["with"]["chrome"] = True
    assert call_problems(copied) == [
        f"{SUITE}: job test step 1 passes chrome, which ./{SETUP} does not declare",
        f"{WORKFLOWS}/tickets.yml: job suite passes pakage, which ./{SUITE} does not declare",
        f"{WORKFLOWS}/tickets.yml: job suite passes chromium='yes', not a boolean",
        f"{WORKFLOWS}/tickets.yml: job suite does not pass package, required by ./{SUITE}",
    ]


# ----------------------------------------------------------------------- per-member workflows


def test_every_member_has_its_workflow_on_the_right_paths(files: dict[str, Doc]) -> None:
    assert member_problems(files) == []
    members = {p.removeprefix(f"{WORKFLOWS}/").removesuffix(".yml") for p in files}
    expected = {"auth", "tickets", "orders", "expiration", "payments", "client", "devserver"}
    assert expected | {"common"} <= members


def test_a_member_without_a_workflow_is_reported(files: dict[str, Doc]) -> None:
    copied = copy.deepcopy(files)
    del copied[f"{WORKFLOWS}/expiration.yml"]
    assert member_problems(copied) == [f"expiration: no workflow {WORKFLOWS}/expiration.yml"]


def test_a_workflow_that_runs_another_members_suite_is_reported(files: dict[str, Doc]) -> None:
    copied, orders = broken(files, f"{WORKFLOWS}/orders.yml")
    orders["jobs"]["suite"]["with"]["package"] = "order"
    assert member_problems(copied) == [
        f"{WORKFLOWS}/orders.yml: job suite runs the suite of order, "
        "not a workspace member with tests",
        f"{WORKFLOWS}/orders.yml: does not call {SUITE} with package: orders",
    ]


def test_paths_that_miss_a_dependency_or_name_nothing_are_reported(
    files: dict[str, Doc],
) -> None:
    copied, payments = broken(files, f"{WORKFLOWS}/payments.yml")
    paths = payments["on"]["push"]["paths"]
    paths.remove("common/**")
    paths[paths.index("payments/**")] = "payment/**"
    payments["on"]["pull_request"]["paths"].remove("uv.lock")
    assert member_problems(copied) == [
        f"{WORKFLOWS}/payments.yml: on.push.paths names payment/**, which is not there",
        f"{WORKFLOWS}/payments.yml: a change to common/** does not run it on push",
        f"{WORKFLOWS}/payments.yml: a change to payments/** does not run it on push",
        f"{WORKFLOWS}/payments.yml: a change to uv.lock does not run it on pull_request",
    ]


def test_a_workflow_without_a_paths_filter_is_reported(files: dict[str, Doc]) -> None:
    copied, auth = broken(files, f"{WORKFLOWS}/auth.yml")
    del auth["on"]["pull_request"]
    assert member_problems(copied) == [
        f"{WORKFLOWS}/auth.yml: not run on pull_request with a paths filter"
    ]


# -------------------------------------------------------------------------- the suite itself


def test_the_suite_runs_as_developers_do_on_a_real_mongodb(files: dict[str, Doc]) -> None:
    assert suite_problems(files) == []
    assert system_problems(files) == []


def suite_step(suite: Doc) -> Doc:
    step: Doc = next(s for s in suite["jobs"]["test"]["steps"] if "pytest" in s.get("run", ""))
    return step


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda suite: suite_step(suite).update(
                run="uv run --package ${{ inputs.package }} pytest tests"
            ),
            f"{SUITE}: no step runs `uv run --locked --package <member> pytest <member>/tests`",
        ),
        (
            lambda suite: suite["jobs"]["test"]["services"]["mongo"].update(image="mongo:4.4"),
            f"{SUITE}: job test: MongoDB 4.4, older than 7.0",
        ),
        (
            lambda suite: suite["jobs"]["test"].pop("services"),
            f"{SUITE}: job test: no MongoDB service container",
        ),
        (
            lambda suite: suite["jobs"]["test"]["env"].update(
                MONGO_URL="mongodb://localhost:27017"
            ),
            f"{SUITE}: job test: MONGO_URL 'mongodb://localhost:27017' does not lead to the "
            "mongo service",
        ),
        (
            lambda suite: suite["jobs"]["lint"]["steps"].pop(),
            f"{SUITE}: does not run `mypy <member>`",
        ),
    ],
)
def test_a_suite_that_strays_is_reported(files: dict[str, Doc], change: Any, expected: str) -> None:
    copied, suite = broken(files, SUITE)
    change(suite)
    assert expected in suite_problems(copied)


def test_a_system_workflow_that_drops_a_suite_is_reported(files: dict[str, Doc]) -> None:
    copied, system = broken(files, SYSTEM)
    del system["jobs"]["e2e"]
    system["jobs"]["browser"]["steps"][1].pop("with")
    system["on"]["pull_request"] = {"paths": ["e2e/**"]}
    assert system_problems(copied) == [
        f"{SYSTEM}: filtered by paths, but these suites span everything",
        f"{SYSTEM}: no job runs the end-to-end suites (pytest e2e)",
        f"{SYSTEM}: job browser does not install Debian's Chromium",
    ]


# ----------------------------------------------------------------------------------- images


def test_images_are_scanned_then_pushed_under_immutable_tags(files: dict[str, Doc]) -> None:
    assert image_problems(files, IMAGE_SERVICES) == []


def publish_step(images: Doc, uses: str) -> Doc:
    step: Doc = next(s for s in images["jobs"]["publish"]["steps"] if uses in s.get("uses", ""))
    return step


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda w: w["jobs"]["scan"]["strategy"]["matrix"]["service"].remove("payments"),
            f"{IMAGES}: scan builds ['auth', 'client', 'expiration', 'orders', 'tickets'], "
            f"the services are {IMAGE_SERVICES}",
        ),
        (
            lambda w: w["jobs"]["publish"].pop("needs"),
            f"{IMAGES}: publish does not wait for the scan",
        ),
        (
            lambda w: w["jobs"]["scan"]["steps"].pop(),
            f"{IMAGES}: the scan job does not run Trivy",
        ),
        (
            lambda w: w["jobs"]["scan"]["steps"][-1]["with"].update({"exit-code": "0"}),
            f"{IMAGES}: Trivy findings do not fail the job (exit-code)",
        ),
        (
            lambda w: w["jobs"]["scan"].update(permissions={"packages": "write"}),
            f"{IMAGES}: the scan job can write packages",
        ),
        (
            lambda w: publish_step(w, "build-push-action")["with"].update(sbom=False),
            f"{IMAGES}: publish does not push with an SBOM",
        ),
        (
            lambda w: publish_step(w, "metadata-action")["with"].update(
                tags="type=sha,prefix=,format=long\ntype=semver,pattern={{version}}\n"
                "type=raw,value=latest\n"
            ),
            f"{IMAGES}: tag rule 'type=raw,value=latest' is a tag that moves",
        ),
        (
            lambda w: publish_step(w, "metadata-action")["with"].update(tags="type=ref,event=tag"),
            f"{IMAGES}: images are not tagged with the full git SHA",
        ),
        (
            lambda w: publish_step(w, "build-push-action")["with"].update(
                {"build-args": "SERVICE=auth"}
            ),
            f"{IMAGES}: publish step build and push: no build-arg "
            "SERVICE=${{ matrix.service }}",
        ),
        (
            lambda w: publish_step(w, "build-push-action")["with"].update(file="auth/Dockerfile"),
            f"{IMAGES}: publish step build and push: not built from the one Dockerfile at the "
            "repository root",
        ),
    ],
)
def test_an_image_workflow_that_strays_is_reported(
    files: dict[str, Doc], change: Any, expected: str
) -> None:
    copied, images = broken(files, IMAGES)
    change(images)
    assert expected in image_problems(copied, IMAGE_SERVICES)


def runner_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What a runner gives a step: its variables, and the locked tools (kubectl) on PATH."""
    tools = str(Path(sys.executable).parent)
    tmp_path.mkdir(parents=True, exist_ok=True)
    output = tmp_path / "github_output"
    output.touch()
    return {
        "PATH": f"{tools}:{os.environ.get('PATH', '')}",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_SHA": SHA,
        "REGISTRY": "ghcr.io",
        **extra,
    }


def test_the_release_manifests_run_the_images_the_workflow_publishes(
    files: dict[str, Doc], tmp_path: Path
) -> None:
    images = files[IMAGES]
    published = {}
    for service in IMAGE_SERVICES:
        env = runner_env(tmp_path / service, OWNER="GitTix-Org", SERVICE=service)
        run_step(images, "publish", "image name", env, REPO_ROOT)
        published[service] = Path(env["GITHUB_OUTPUT"]).read_text().strip().removeprefix("image=")
    assert published["orders"] == "ghcr.io/gittix-org/gittix-orders"

    render = next(s for s in images["jobs"]["manifests"]["steps"] if s.get("name") == "render")
    env = runner_env(tmp_path, OWNER="GitTix-Org", BASE=str(REPO_ROOT / render["env"]["BASE"]))
    run_step(images, "manifests", "render", env, REPO_ROOT)
    rendered = [d for d in yaml.safe_load_all((tmp_path / "gittix-k8s.yaml").read_text()) if d]
    running = {
        container["image"]
        for obj in rendered
        if obj["kind"] in {"Deployment", "StatefulSet"}
        for container in obj["spec"]["template"]["spec"]["containers"]
    }
    ours = {image for image in running if "gittix" in image}
    assert ours == {f"{published[s]}:{SHA}" for s in IMAGE_SERVICES}
    # The release is the production overlay with nothing but its images changed, and the
    # overlay's images are the ones skaffold builds and substitutes under `skaffold dev`.
    overlay_path = REPO_ROOT / render["env"]["BASE"]
    assert overlay_path == REPO_ROOT / "infra" / "overlays" / "production"
    overlay = kustomize(overlay_path)
    assert len(rendered) == len(overlay)
    replaced = {
        container["image"]
        for obj in overlay
        if obj["kind"] in {"Deployment", "StatefulSet"}
        for container in obj["spec"]["template"]["spec"]["containers"]
        if container["image"] not in running
    }
    images_of_overlay = yaml.safe_load((overlay_path / "kustomization.yaml").read_text())["images"]
    assert replaced == {f"{i['newName']}:{i['newTag']}" for i in images_of_overlay}
    skaffold = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
    built = {artifact["image"] for artifact in skaffold["build"]["artifacts"]}
    assert (
        {i["name"] for i in images_of_overlay} == built == {f"gittix/{s}" for s in IMAGE_SERVICES}
    )


def test_the_release_render_fails_when_an_image_is_left_unpublished(
    files: dict[str, Doc], tmp_path: Path
) -> None:
    images = copy.deepcopy(files[IMAGES])
    render = next(s for s in images["jobs"]["manifests"]["steps"] if s.get("name") == "render")
    # A service whose image name the transformer's list would not match.
    render["run"] = render["run"].replace("sort -u |", "sort -u | grep -v orders |")
    env = runner_env(tmp_path, OWNER="acme", BASE=str(REPO_ROOT / render["env"]["BASE"]))
    with pytest.raises(RuntimeError, match="gittix-orders:unreleased"):
        run_step(images, "manifests", "render", env, REPO_ROOT)


def test_load_yaml_keeps_on_as_a_key() -> None:
    assert load_yaml("on: push\nflag: yes\nreal: true\n") == {
        "on": "push",
        "flag": "yes",
        "real": True,
    }
