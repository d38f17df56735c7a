"""The offline checks of the GitHub Actions CI: each returns the problems it finds (empty: passes).

`files` is every workflow and action of .github, parsed, keyed by its path in the repository, so
a test can break a deep copy and show that a check notices.
"""

import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from infra_checks import REPO_ROOT, tool

SCHEMAS = Path(__file__).parent / "schemas" / "github"
WORKFLOW_SCHEMA = SCHEMAS / "github-workflow.json"
ACTION_SCHEMA = SCHEMAS / "github-action.json"
DEPENDABOT_SCHEMA = SCHEMAS / "dependabot.json"
DEPENDABOT = ".github/dependabot.yml"
WORKFLOWS = ".github/workflows"
SUITE = f"{WORKFLOWS}/service-suite.yml"
SETUP = ".github/actions/setup"
IMAGES = f"{WORKFLOWS}/images.yml"
SYSTEM = f"{WORKFLOWS}/system.yml"
# What every suite runs, exactly as a developer types it (`--locked`: fail on a stale lock).
SUITE_COMMAND = "uv run --locked --package {0} pytest {0}/tests"
MINIMUM_MONGO_MAJOR = 7
# A remote action or workflow is pinned to a full release (vX.Y.Z) or to a commit.
PINNED = re.compile(r"[\w.-]+/[\w./-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})")
INPUT_EXPRESSION = re.compile(r"\$\{\{\s*inputs\.package\s*\}\}")

Doc = dict[str, Any]


# ---------------------------------------------------------------------------------------- files


class _Loader(yaml.SafeLoader):
    """YAML as GitHub reads it: only true/false are booleans, so the key `on` stays "on"."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def github_files(root: Path = REPO_ROOT) -> dict[str, Doc]:
    """Every workflow and action under root/.github, parsed, keyed by its path from root."""
    paths = sorted((root / WORKFLOWS).glob("*.y*ml")) + sorted(
        (root / ".github" / "actions").glob("*/action.y*ml")
    )
    return {str(p.relative_to(root)): load_yaml(p.read_text()) for p in paths}


def is_action(path: str) -> bool:
    return Path(path).name in {"action.yml", "action.yaml"}


def workflows(files: dict[str, Doc]) -> dict[str, Doc]:
    return {path: doc for path, doc in files.items() if not is_action(path)}


def steps(doc: Doc) -> Iterator[tuple[str, Doc]]:
    """(where, step) for every step of a workflow's jobs or a composite action."""
    if "runs" in doc:
        for index, step in enumerate(doc["runs"].get("steps", [])):
            yield f"step {index}", step
        return
    for job_id, job in (doc.get("jobs") or {}).items():
        for index, step in enumerate(job.get("steps", [])):
            yield f"job {job_id} step {step.get('name', index)}", step


# -------------------------------------------------------------------------------------- schemas


def schema_problems(files: dict[str, Doc]) -> list[str]:
    """Each workflow against SchemaStore's workflow schema, each action against its action one."""
    workflow = jsonschema.Draft7Validator(_json(WORKFLOW_SCHEMA))
    action = jsonschema.Draft7Validator(_json(ACTION_SCHEMA))
    problems = []
    for path, doc in files.items():
        validator = action if is_action(path) else workflow
        for error in validator.iter_errors(doc):
            problems.append(f"{path}: {_deepest(error)}")
    return problems


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _deepest(error: jsonschema.ValidationError) -> str:
    # Jobs and steps are oneOf/anyOf alternatives: the errors deepest in the document are the
    # ones meant (a misspelled key shows as both "unexpected" and "required missing" there).
    leaves, todo = [], [error]
    while todo:
        current = todo.pop()
        if current.context:
            todo.extend(current.context)
        else:
            leaves.append(current)
    depth = max(len(leaf.absolute_path) for leaf in leaves)
    deepest = [leaf for leaf in leaves if len(leaf.absolute_path) == depth]
    where = ".".join(map(str, deepest[0].absolute_path))
    return f"{where}: " + "; ".join(sorted({leaf.message for leaf in deepest}))


def dependabot_problems(config: Doc, root: Path = REPO_ROOT) -> list[str]:
    """dependabot.yml passes its schema and proposes new releases of the pinned actions, in the
    workflows ("/") and in every action of ours."""
    validator = jsonschema.Draft7Validator(_json(DEPENDABOT_SCHEMA))
    problems = [f"{DEPENDABOT}: {_deepest(e)}" for e in validator.iter_errors(config)]
    if problems:
        return problems
    watched: set[str] = set()
    for update in config.get("updates", []):
        if update.get("package-ecosystem") == "github-actions":
            watched |= set(update.get("directories", [])) | {update.get("directory", "")}
    wanted = {"/"} | {
        "/" + str(p.parent.relative_to(root))
        for p in (root / ".github" / "actions").glob("*/action.yml")
    }
    for directory in sorted(wanted - watched):
        problems.append(f"{DEPENDABOT}: the actions used in {directory} are never updated")
    return problems


# ------------------------------------------------------------------------------ uses and inputs


def pin_problems(files: dict[str, Doc], root: Path = REPO_ROOT) -> list[str]:
    """Remote actions and workflows pinned to a full version or a commit; local ones exist."""
    problems = []
    for path, ref in _uses(files):
        if ref.startswith("./"):
            target = root / ref[2:]
            if not (target.is_file() or (target / "action.yml").is_file()):
                problems.append(f"{path}: uses {ref}, which is not in the repository")
        elif ref.startswith("docker://"):
            if "@sha256:" not in ref:
                problems.append(f"{path}: uses {ref}, not pinned by digest")
        elif not PINNED.fullmatch(ref):
            problems.append(f"{path}: uses {ref}, not pinned to a full version (vX.Y.Z) or commit")
    return problems


def _uses(files: dict[str, Doc]) -> Iterator[tuple[str, str]]:
    for path, doc in files.items():
        for job in (doc.get("jobs") or {}).values():
            if "uses" in job:
                yield path, job["uses"]
        for _, step in steps(doc):
            if "uses" in step:
                yield path, step["uses"]


def call_problems(files: dict[str, Doc]) -> list[str]:
    """Every call of our own reusable workflow or composite action passes inputs it declares,
    all the required ones, and a boolean where a boolean is declared."""
    problems = []
    for path, doc in files.items():
        calls = [(f"job {j}", job) for j, job in (doc.get("jobs") or {}).items() if "uses" in job]
        calls += [(where, step) for where, step in steps(doc) if "uses" in step]
        for where, call in calls:
            ref = str(call["uses"])
            if not ref.startswith("./"):
                continue
            callee = ref[2:] if ref.endswith((".yml", ".yaml")) else f"{ref[2:]}/action.yml"
            if callee not in files:
                continue  # pin_problems reports it
            declared = _inputs(files[callee])
            given = call.get("with") or {}
            for name in sorted(set(given) - set(declared)):
                problems.append(f"{path}: {where} passes {name}, which {ref} does not declare")
            for name, spec in sorted(declared.items()):
                if spec.get("required") and "default" not in spec and name not in given:
                    problems.append(f"{path}: {where} does not pass {name}, required by {ref}")
                value = given.get(name)
                if (
                    spec.get("type") == "boolean"
                    and name in given
                    and not isinstance(value, bool)
                    and not str(value).startswith("${{")
                ):
                    problems.append(f"{path}: {where} passes {name}={value!r}, not a boolean")
    return problems


def _inputs(doc: Doc) -> dict[str, Doc]:
    if "runs" in doc:
        declared: dict[str, Doc] = doc.get("inputs") or {}
        return declared
    trigger = doc.get("on") or {}
    call = trigger.get("workflow_call") if isinstance(trigger, dict) else None
    return dict((call or {}).get("inputs") or {})


# -------------------------------------------------------------------- per-member workflows


def members(root: Path = REPO_ROOT) -> dict[str, Doc]:
    """Workspace members by directory: their pyproject.toml, parsed."""
    workspace = tomllib.loads((root / "pyproject.toml").read_text())
    return {
        name: tomllib.loads((root / name / "pyproject.toml").read_text())
        for name in workspace["tool"]["uv"]["workspace"]["members"]
    }


def built_on(member: str, every: dict[str, Doc]) -> set[str]:
    """The member's directory and those of every workspace member it depends on (dev group too)."""
    by_name = {doc["project"]["name"]: directory for directory, doc in every.items()}
    seen, todo = set(), [member]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        doc = every[current]
        wanted = list(doc["project"].get("dependencies", []))
        for group in doc.get("dependency-groups", {}).values():
            wanted += [d for d in group if isinstance(d, str)]
        for requirement in wanted:
            name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
            if name in by_name:
                todo.append(by_name[name])
    return seen


def member_problems(files: dict[str, Doc], root: Path = REPO_ROOT) -> list[str]:
    """One workflow per member with a suite, run on push and pull request when the member, what
    it is built on, testing/, the lock or the CI itself changes; it calls the suite for exactly
    that member. Every path filter names something in the repository."""
    problems = []
    every = members(root)
    tested = sorted(m for m in every if (root / m / "tests").is_dir())
    called: dict[str, str] = {}
    for path, doc in workflows(files).items():
        for job_id, job in (doc.get("jobs") or {}).items():
            if job.get("uses") == f"./{SUITE}":
                package = str((job.get("with") or {}).get("package"))
                called[path] = package
                if package not in tested:
                    problems.append(
                        f"{path}: job {job_id} runs the suite of {package}, "
                        "not a workspace member with tests"
                    )
        trigger = doc.get("on") or {}
        for event in ("push", "pull_request") if isinstance(trigger, dict) else ():
            for pattern in (trigger.get(event) or {}).get("paths", []):
                literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0].rstrip("/")
                if literal and not (root / literal).exists():
                    problems.append(f"{path}: on.{event}.paths names {pattern}, which is not there")
    for member in tested:
        path = f"{WORKFLOWS}/{member}.yml"
        if path not in files:
            problems.append(f"{member}: no workflow {path}")
            continue
        if called.get(path) != member:
            problems.append(f"{path}: does not call {SUITE} with package: {member}")
        trigger = files[path].get("on") or {}
        wanted = {f"{d}/**" for d in built_on(member, every)}
        wanted |= {"testing/**", "uv.lock", path, SUITE, f"{SETUP}/**"}
        for event in ("push", "pull_request"):
            spec = trigger.get(event) if isinstance(trigger, dict) else None
            if not isinstance(spec, dict) or "paths" not in spec:
                problems.append(f"{path}: not run on {event} with a paths filter")
                continue
            for missing in sorted(wanted - set(spec["paths"])):
                problems.append(f"{path}: a change to {missing} does not run it on {event}")
    return problems


# ---------------------------------------------------------------------------- the suite itself


def suite_problems(files: dict[str, Doc]) -> list[str]:
    """The reusable suite: takes the member as `package`, lints it with ruff and mypy, and runs
    its suite exactly as a developer does, against a MongoDB service of a current version."""
    doc = files.get(SUITE)
    if doc is None:
        return [f"{SUITE}: missing"]
    problems = []
    package = _inputs(doc).get("package")
    if not package or not package.get("required") or package.get("type") != "string":
        problems.append(f"{SUITE}: no required string input `package`")
    runs = {job_id: _runs(job) for job_id, job in (doc.get("jobs") or {}).items()}
    everything = " ".join(" ".join(r) for r in runs.values())
    mine = "<member>"
    for tool_command in ("ruff check <member>", "ruff format --check <member>", "mypy <member>"):
        if tool_command not in INPUT_EXPRESSION.sub(mine, everything):
            problems.append(f"{SUITE}: does not run `{tool_command}`")
    command = SUITE_COMMAND.format(mine)
    suite_jobs = [
        job_id
        for job_id, job_runs in runs.items()
        if any(INPUT_EXPRESSION.sub(mine, r).strip() == command for r in job_runs)
    ]
    if not suite_jobs:
        problems.append(f"{SUITE}: no step runs `{command}`")
    for job_id in suite_jobs:
        problems += mongo_problems(f"{SUITE}: job {job_id}", doc["jobs"][job_id])
    return problems


def _runs(job: Doc) -> list[str]:
    return [str(step["run"]) for step in job.get("steps", []) if "run" in step]


def mongo_problems(where: str, job: Doc) -> list[str]:
    """The job has a MongoDB service of a current version and MONGO_URL leads to it."""
    services = job.get("services") or {}
    mongo = {
        name: spec
        for name, spec in services.items()
        if str(spec.get("image", "")).startswith("mongo:")
    }
    if not mongo:
        return [f"{where}: no MongoDB service container"]
    problems = []
    name, spec = next(iter(mongo.items()))
    version = str(spec["image"]).split(":", 1)[1]
    major = re.match(r"(\d+)\.\d+", version)
    if major is None or int(major.group(1)) < MINIMUM_MONGO_MAJOR:
        problems.append(f"{where}: MongoDB {version}, older than {MINIMUM_MONGO_MAJOR}.0")
    url = str((job.get("env") or {}).get("MONGO_URL", ""))
    # In a job container the service is reached by its name; on the runner, by a mapped port.
    if "container" in job:
        leads = re.fullmatch(rf"mongodb://{re.escape(name)}:27017/?", url) is not None
    else:
        mapped = any(str(p).split(":")[0] == "27017" for p in spec.get("ports", []))
        leads = mapped and bool(re.fullmatch(r"mongodb://(localhost|127\.0\.0\.1):27017/?", url))
    if not leads:
        problems.append(f"{where}: MONGO_URL {url!r} does not lead to the {name} service")
    return problems


def system_problems(files: dict[str, Doc]) -> list[str]:
    """The cross-cutting workflow: the offline checks, the end-to-end suites against MongoDB, the
    browser journeys with Debian's Chromium, on every push to main and every pull request."""
    doc = files.get(SYSTEM)
    if doc is None:
        return [f"{SYSTEM}: missing"]
    problems = []
    trigger = doc.get("on") or {}
    for event in ("push", "pull_request"):
        if not isinstance(trigger, dict) or event not in trigger:
            problems.append(f"{SYSTEM}: not run on {event}")
        elif "paths" in (trigger[event] or {}):
            problems.append(f"{SYSTEM}: filtered by paths, but these suites span everything")
    jobs = doc.get("jobs") or {}

    def running(pattern: str) -> list[str]:
        return [j for j, job in jobs.items() if any(re.search(pattern, r) for r in _runs(job))]

    if not running(r"\bpytest tests\b"):
        problems.append(f"{SYSTEM}: no job runs `pytest tests` (the offline checks)")
    e2e = running(r"\bpytest e2e\b.*--ignore=e2e/test_browser\.py")
    browser = running(r"\bpytest e2e/test_browser\.py\b")
    if not e2e:
        problems.append(f"{SYSTEM}: no job runs the end-to-end suites (pytest e2e)")
    if not browser:
        problems.append(f"{SYSTEM}: no job runs the browser journeys (e2e/test_browser.py)")
    for job_id in e2e + browser:
        problems += mongo_problems(f"{SYSTEM}: job {job_id}", jobs[job_id])
    for job_id in browser:
        setup = [s for s in jobs[job_id].get("steps", []) if s.get("uses") == f"./{SETUP}"]
        if not setup or str((setup[0].get("with") or {}).get("chromium")).lower() != "true":
            problems.append(f"{SYSTEM}: job {job_id} does not install Debian's Chromium")
    if not running(r"\bmake lint\b"):
        problems.append(f"{SYSTEM}: no job runs `make lint`")
    return problems


# ---------------------------------------------------------------------------------------- images


def image_problems(files: dict[str, Doc], services: list[str]) -> list[str]:
    """images.yml: on main and version tags, each service built from the one Dockerfile, scanned
    by Trivy with no write access, and only then pushed to GHCR under immutable tags (full SHA,
    release version, never `latest`) with an SBOM."""
    doc = files.get(IMAGES)
    if doc is None:
        return [f"{IMAGES}: missing"]
    problems = []
    push = (doc.get("on") or {}).get("push") or {}
    if "main" not in push.get("branches", []) or not push.get("tags"):
        problems.append(f"{IMAGES}: not run on pushes to main and on tags")
    if "packages" in (doc.get("permissions") or {}):
        problems.append(f"{IMAGES}: every job may write packages; only publish should")
    jobs = doc.get("jobs") or {}
    scan, publish = jobs.get("scan"), jobs.get("publish")
    if scan is None or publish is None:
        return [*problems, f"{IMAGES}: no scan and publish jobs"]
    for job_id, job in (("scan", scan), ("publish", publish)):
        matrix = sorted(((job.get("strategy") or {}).get("matrix") or {}).get("service", []))
        if matrix != sorted(services):
            problems.append(f"{IMAGES}: {job_id} builds {matrix}, the services are {services}")
        for where, step in _builds(job_id, job):
            problems += _build_problems(where, step.get("with") or {})
    if (scan.get("permissions") or {}).get("packages") == "write":
        problems.append(f"{IMAGES}: the scan job can write packages")
    if (publish.get("permissions") or {}).get("packages") != "write":
        problems.append(f"{IMAGES}: the publish job cannot push to GHCR")
    needs = publish.get("needs", [])
    if "scan" not in ([needs] if isinstance(needs, str) else needs):
        problems.append(f"{IMAGES}: publish does not wait for the scan")
    scanned = [w.get("tags") for _, s in _builds("scan", scan) if (w := s.get("with") or {})]
    trivy = [s for s in scan.get("steps", []) if "aquasecurity/trivy-action@" in s.get("uses", "")]
    if not trivy:
        problems.append(f"{IMAGES}: the scan job does not run Trivy")
    for step in trivy:
        settings = step.get("with") or {}
        if settings.get("image-ref") not in scanned:
            problems.append(f"{IMAGES}: Trivy scans {settings.get('image-ref')}, not the build")
        if str(settings.get("exit-code")) != "1":
            problems.append(f"{IMAGES}: Trivy findings do not fail the job (exit-code)")
    pushed = [s.get("with") or {} for _, s in _builds("publish", publish)]
    if not any(w.get("push") is True and w.get("sbom") is True for w in pushed):
        problems.append(f"{IMAGES}: publish does not push with an SBOM")
    meta = [s for s in publish.get("steps", []) if "docker/metadata-action@" in s.get("uses", "")]
    tags = str(((meta[0].get("with") or {}) if meta else {}).get("tags", ""))
    flavor = str(((meta[0].get("with") or {}) if meta else {}).get("flavor", ""))
    rules = [line.strip() for line in tags.splitlines() if line.strip()]
    if not any(r.startswith("type=sha") and "format=long" in r for r in rules):
        problems.append(f"{IMAGES}: images are not tagged with the full git SHA")
    if not any(r.startswith("type=semver") and "{{version}}" in r for r in rules):
        problems.append(f"{IMAGES}: images are not tagged with the release version")
    for rule in rules:
        if not rule.startswith(("type=sha", "type=semver")):
            problems.append(f"{IMAGES}: tag rule {rule!r} is a tag that moves")
    if "latest=false" not in flavor:
        problems.append(f"{IMAGES}: metadata-action may add `latest`, a tag that moves")
    if meta and not all(
        w.get("tags") == f"${{{{ steps.{meta[0].get('id')}.outputs.tags }}}}" for w in pushed
    ):
        problems.append(f"{IMAGES}: publish does not push the tags metadata-action computed")
    return problems


def _builds(job_id: str, job: Doc) -> list[tuple[str, Doc]]:
    return [
        (f"{IMAGES}: {job_id} step {s.get('name', i)}", s)
        for i, s in enumerate(job.get("steps", []))
        if "docker/build-push-action@" in s.get("uses", "")
    ]


def _build_problems(where: str, settings: Doc) -> list[str]:
    problems = []
    if settings.get("file") != "Dockerfile" or settings.get("context", ".") != ".":
        problems.append(f"{where}: not built from the one Dockerfile at the repository root")
    if "SERVICE=${{ matrix.service }}" not in str(settings.get("build-args", "")).splitlines():
        problems.append(f"{where}: no build-arg SERVICE=${{{{ matrix.service }}}}")
    if settings.get("target") != "runtime":
        problems.append(f"{where}: builds stage {settings.get('target')}, not runtime")
    return problems


def run_step(doc: Doc, job: str, name: str, env: dict[str, str], cwd: Path) -> str:
    """Run one step's shell script as a GitHub runner would (bash -eo pipefail), with `env`
    standing for the runner's variables and the step's `env` expressions; returns its output."""
    step = next(s for s in doc["jobs"][job]["steps"] if s.get("name") == name)
    script = str(step["run"])
    if "${{" in script:
        raise ValueError(f"{name}: the script interpolates an expression; pass it through env")
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=env,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


# ------------------------------------------------------------------------------------ actionlint


def actionlint(github: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """actionlint (with shellcheck for the `run:` scripts) over a copy of `github` (a .github
    directory). Its input checks know popular actions by major version (actions/checkout@v6),
    so the copy names each pinned vX.Y.Z by its major; lines and files stay where they were."""
    copy = workdir / ".github"
    shutil.copytree(github, copy)
    (workdir / ".git").mkdir()  # where actionlint finds the project root (for ./ actions)
    for path in copy.rglob("*.y*ml"):
        text = path.read_text()
        path.write_text(re.sub(r"(uses: [\w./-]+@v\d+)\.\d+\.\d+", r"\1", text))
    return subprocess.run(
        [tool("actionlint"), "-no-color", "-shellcheck", tool("shellcheck")],
        capture_output=True,
        text=True,
        check=False,
        cwd=workdir,
    )
