"""The handlers under the boto3/botocore of the python3.12 Lambda runtime (issue 9, item 11).

The functions run on the runtime's own SDK, not on the venv's. Which one that is:

- AWS publishes no fixed number: "The version of the AWS SDK included in the Python runtime
  depends on the runtime version and your AWS Region" (Runtime-included SDK versions,
  https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html#python-sdk-included). The
  runtime is updated over time and regions roll out at different times.
- Last observed: boto3/botocore **1.38.36** for python3.12 and python3.13
  (https://github.com/terricain/aioboto3/issues/381, 2025-08-16, confirmed 2025-08-22).
- Floor: python3.12 has shipped a boto3 with Bedrock since at least 2024-01-02
  (https://github.com/aws-samples/amazon-bedrock-samples/pull/53); bedrock-runtime first
  appears in botocore **1.31.57** (boto3 1.28.57, 2023-09-28). A function pinned to an early
  runtime version (runtime management "Manual") keeps that era's SDK, so this oldest plausible
  version is the one the handlers must work with (the safe side).

ListBuckets pagination in botocore's model: ``MaxBuckets``/``ContinuationToken`` by 1.35.0 (not
in 1.34.150); ``Prefix``/``BucketRegion`` (and ``Buckets[].BucketRegion``) between 1.35.40 and
1.35.60. So the floor has neither, the last observed version has both.

Each SDK gets a venv of its own under ``.tools/lambda-sdk-<botocore>/`` (created once, from PyPI,
with a python3.12 when one is found), and this file runs in it as a script: it imports every
handler module with nothing but boto3 and the standard library, checks every operation of
``handlers/response/permissions.py`` and the parameter names of every client call in ``handlers/``
against that botocore's model, and drives real code paths through that botocore (parameter
validation, serialisation, response parsing, S3's region redirect). The same script also runs
under the main venv's botocore, so a regression shows in both.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __name__ != "__main__":  # the probe run (python this_file.py) has boto3 and the stdlib only
    import pytest

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / ".tools"
RUNTIME_FLOOR = ("1.28.57", "1.31.57")  # (boto3, botocore): oldest plausible python3.12 SDK
RUNTIME_OBSERVED = ("1.38.36", "1.38.36")  # last observed python3.12 SDK (2025-08)
LAMBDA_PYTHON = "3.12"
RESULT_PREFIX = "LAMBDA-SDK-PROBE "
ACCOUNT = "111122223333"
HOME = "eu-central-1"
OTHER = "eu-west-1"


# ---- the tests (main venv) ----------------------------------------------------------------------


def test_handlers_under_oldest_plausible_runtime_sdk() -> None:
    report = run_probe(runtime_python(*RUNTIME_FLOOR))
    assert report["botocore"] == RUNTIME_FLOOR[1]
    assert report["paged_model"] is False, "the floor's model has no ListBuckets pagination"
    assert report["checks"]["list-unpaged-xml"]["regions"] == [None, None, None], report["checks"]


def test_handlers_under_last_observed_runtime_sdk() -> None:
    report = run_probe(runtime_python(*RUNTIME_OBSERVED))
    assert report["botocore"] == RUNTIME_OBSERVED[1]
    assert report["paged_model"] is True
    assert report["checks"]["list-paged-xml"]["requests"] == 2, report["checks"]


def test_handlers_under_main_venv_sdk() -> None:
    report = run_probe(Path(sys.executable))
    assert report["paged_model"] is True
    assert "list-paged-xml" in report["checks"] and "list-unpaged-forced" in report["checks"]


# ---- venvs and the probe run ---------------------------------------------------------------------


def lambda_interpreter() -> str:
    """A python3.12 (the runtime's), else this interpreter (botocore does not differ by Python)."""
    from stacks.packaging import python_version  # not at the top: the probe run has the stdlib only

    home = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [
        os.environ.get("LAMBDA_PYTHON"),
        shutil.which(f"python{LAMBDA_PYTHON}"),
        *(str(p) for p in sorted(home.glob(f"versions/{LAMBDA_PYTHON}*/bin/python{LAMBDA_PYTHON}"))[::-1]),
    ]
    for candidate in filter(None, candidates):
        if python_version(candidate) == LAMBDA_PYTHON:
            return candidate
    return sys.executable


def runtime_python(boto3_version: str, botocore_version: str) -> Path:
    """The python of a venv holding exactly boto3/botocore at these versions (created once, cached)."""
    target = TOOLS / f"lambda-sdk-{botocore_version}"
    python = target / "bin" / "python"
    stamp = target / ".lambda-sdk"
    wanted = f"boto3=={boto3_version} botocore=={botocore_version}"
    if stamp.is_file() and stamp.read_text().strip() == wanted and python.exists():
        return python
    TOOLS.mkdir(exist_ok=True)
    base = lambda_interpreter()
    staging = Path(tempfile.mkdtemp(prefix=f".lambda-sdk-{botocore_version}-", dir=TOOLS))
    try:
        _run_or_fail([base, "-m", "venv", "--without-pip", str(staging)], "create the venv", 120)
        _run_or_fail(
            [
                *(sys.executable, "-m", "pip", "--python", str(staging / "bin" / "python"), "install"),
                *("--disable-pip-version-check", "--no-input", "--timeout", "60"),
                *(f"boto3=={boto3_version}", f"botocore=={botocore_version}"),
            ],
            f"install {wanted} from PyPI (CI has PyPI; without it this test cannot run)",
            600,
        )
        (staging / ".lambda-sdk").write_text(wanted + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return python


def _run_or_fail(command: list[str], what: str, timeout: float) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"could not {what}: {exc}")
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        pytest.fail(f"could not {what} ({' '.join(command[:6])} ...):\n{tail}")


def run_probe(python: Path) -> dict[str, Any]:
    """Run this file as the probe under ``python``; its report, after failing on any problem found."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": HOME,
        "AWS_REGION": HOME,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    started = time.monotonic()
    try:
        done = subprocess.run(
            [str(python), str(Path(__file__).resolve())],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=300,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the probe under {python} timed out: {exc}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        pytest.fail(
            f"the probe under {python} gave no report (exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    report = json.loads(lines[-1][len(RESULT_PREFIX) :])
    print(
        f"probe: python {report['python']} boto3 {report['boto3']} botocore {report['botocore']} "
        f"({python}), {len(report['static'])} client calls checked, "
        f"{time.monotonic() - started:.1f} s"
    )
    for note in report["notes"]:
        print(f"  note: {note}")
    assert not report["failures"], (
        f"under botocore {report['botocore']} (python {report['python']}):\n  "
        + "\n  ".join(report["failures"])
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return report


# ---- the probe (runs under the SDK being checked: boto3 and the standard library only) ------------

# Client methods that are not API operations.
CLIENT_HELPERS = frozenset(
    {
        *("meta", "exceptions", "get_paginator", "get_waiter", "can_paginate", "close"),
        *("generate_presigned_url", "generate_presigned_post", "waiter_names"),
        *("upload_file", "download_file", "upload_fileobj", "download_fileobj", "copy"),
    }
)
GUARD_MARK = "sdk-guarded"  # a call on a line with this mark is only made when the model has its params


class Probe:
    """Collects checks, failures and notes; prints one JSON report line at the end."""

    def __init__(self) -> None:
        import boto3
        import botocore
        import botocore.session

        self.boto3_version = boto3.__version__
        self.botocore_version = botocore.__version__
        self.session = botocore.session.get_session()
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.checks: dict[str, Any] = {}
        self.static: list[str] = []
        self._models: dict[str, Any] = {}

    def model(self, service: str) -> Any:
        if service not in self._models:
            self._models[service] = self.session.get_service_model(service)
        return self._models[service]

    def input_members(self, service: str, operation: str) -> set[str]:
        shape = self.model(service).operation_model(operation).input_shape
        return set(getattr(shape, "members", None) or {})

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def run(self, name: str, check: Callable[[Probe], dict[str, Any] | None]) -> None:
        """Run one check; an exception is a failure named after it (never a crash of the probe)."""
        import traceback

        try:
            result = check(self)
            if result is not None:
                self.checks[name] = result
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.fail(f"{name}: {type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})")

    def report(self) -> None:
        import platform

        paged = {"MaxBuckets", "ContinuationToken"} <= self.input_members("s3", "ListBuckets")
        line = {
            "python": platform.python_version(),
            "boto3": self.boto3_version,
            "botocore": self.botocore_version,
            "paged_model": paged,
            "checks": self.checks,
            "static": self.static,
            "failures": self.failures,
            "notes": self.notes,
        }
        print(RESULT_PREFIX + json.dumps(line, default=str), flush=True)


def check_imports(probe: Probe) -> dict[str, Any]:
    """Every handler module imports (in a runtime SDK venv: with nothing but boto3 and the stdlib)."""
    import importlib
    import pkgutil

    import handlers

    names = sorted(m.name for m in pkgutil.walk_packages(handlers.__path__, "handlers."))
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            probe.fail(f"import {name}: {type(exc).__name__}: {exc}")
    required = [
        "handlers.sweep.bucket_listing",
        "handlers.response.exposure",
        "handlers.response.remediation",
        "handlers.response.alert",
    ]
    required += ["handlers.response.idempotency", "handlers.response.exposure_ledger"]
    for name in required:
        if name not in sys.modules:
            probe.fail(f"{name} was not imported")
    stdlib = set(sys.stdlib_module_names)
    sdk = {"boto3", "botocore", "jmespath", "dateutil", "urllib3", "s3transfer", "six", "certifi", "handlers"}
    others = sorted(
        {
            m.split(".")[0]
            for m in list(sys.modules)
            if m.split(".")[0] not in stdlib and m.split(".")[0] not in sdk and not m.startswith("_")
        }
    )
    if others:
        probe.fail(f"the handlers import more than boto3 and the standard library: {others}")
    return {"modules": len(names), "third_party_beyond_boto3": others}


def check_permissions(probe: Probe) -> dict[str, Any]:
    """Every operation in handlers/response/permissions.py exists in this botocore's model."""
    from handlers.response import permissions

    calls = {
        (call.service, call.operation)
        for value in vars(permissions).values()
        if isinstance(value, tuple)
        for call in value
        if isinstance(call, permissions.ApiCall)
    }
    for service, operation in sorted(calls):
        try:
            names = probe.model(service).operation_names
        except Exception as exc:
            probe.fail(f"permissions: service {service!r} not in this botocore: {exc}")
            continue
        if operation not in names:
            probe.fail(f"permissions: {service}:{operation} is not an operation of this botocore")
    return {"operations": len(calls)}


def check_call_parameters(probe: Probe) -> dict[str, Any]:
    """The parameter names of every client call in handlers/ are members of the operation's input.

    A client call is ``<name>.<operation>(...)`` on a receiver named after a service of
    handlers/response/permissions.py (``s3``, ``s3control``, ``self._dynamodb``, ...), or a dispatch like
    ``self._call("update_item", ...)``. ``**mapping`` is resolved from the dict literals, ``dict()``
    calls and ``mapping["Key"] = ...`` assignments of the enclosing function, ``**helper(...)``
    from the dict literals ``helper`` returns.
    """
    from botocore import xform_name

    from handlers.response import permissions

    services = sorted(
        {
            call.service
            for value in vars(permissions).values()
            if isinstance(value, tuple)
            for call in value
            if isinstance(call, permissions.ApiCall)
        }
    )
    snake: dict[str, dict[str, str]] = {}
    for service in services:
        snake[service] = {xform_name(op): op for op in probe.model(service).operation_names}
    files = sorted((REPO / "handlers").rglob("*.py"))
    trees = {path: ast.parse(path.read_text(), str(path)) for path in files}
    functions = _functions(trees.values())
    seen: set[tuple[str, int, int]] = set()
    unresolved = 0
    for path, tree in trees.items():
        source = path.read_text().splitlines()
        for scope in _outer_functions(tree):
            for node in ast.walk(scope):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                key = (str(path), node.lineno, node.col_offset)
                if key in seen:
                    continue
                target = _client_target(node, snake)
                if target is None:
                    continue
                seen.add(key)
                candidates, method = target
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                if not candidates:
                    probe.fail(f"{where}: {method} is not an operation of this botocore's clients")
                    continue
                params, open_ends = _parameter_names(node, scope, functions)
                unresolved += open_ends
                guarded = GUARD_MARK in source[node.lineno - 1]
                fits = [
                    (service, op)
                    for service, op in candidates
                    if guarded or params <= probe.input_members(service, op)
                ]
                label = "/".join(f"{s}:{op}" for s, op in candidates)
                probe.static.append(f"{where} {label}({', '.join(sorted(params))})" + (" guarded" * guarded))
                if not fits:
                    service, op = candidates[0]
                    unknown = sorted(params - probe.input_members(service, op))
                    probe.fail(
                        f"{where}: {service}:{op} has no parameter {', '.join(unknown)} in this botocore"
                    )
    if unresolved:
        probe.notes.append(f"{unresolved} **mapping argument(s) could not be resolved statically")
    return {"calls": len(seen), "unresolved": unresolved}


def _outer_functions(tree: ast.Module) -> list[ast.AST]:
    """Module-level functions and methods (nested functions and lambdas are searched inside them)."""
    found: list[ast.AST] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(node)
        elif isinstance(node, ast.ClassDef):
            found += [n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return found


def _client_target(
    call: ast.Call, snake: dict[str, dict[str, str]]
) -> tuple[list[tuple[str, str]], str] | None:
    """(candidate (service, operation)s, method) when ``call`` is an AWS client call, else ``None``."""
    func = call.func
    assert isinstance(func, ast.Attribute)
    method = func.attr
    receiver = ast.unparse(func.value).split(".")[-1].lstrip("_")
    if receiver in snake:
        if method in CLIENT_HELPERS:
            return None
        op = snake[receiver].get(method)
        return ([(receiver, op)] if op else []), method
    if method.lstrip("_") == "call" and call.args and isinstance(call.args[0], ast.Constant):
        name = call.args[0].value
        if isinstance(name, str):
            found = [(service, ops[name]) for service, ops in snake.items() if name in ops]
            return (found, name) if found else None
    return None


def _parameter_names(call: ast.Call, scope: ast.AST, functions: Functions) -> tuple[set[str], int]:
    """The keyword names ``call`` passes, and how many ``**`` arguments stayed unresolved."""
    names: set[str] = set()
    open_ends = 0
    for keyword in call.keywords:
        if keyword.arg is not None:
            names.add(keyword.arg)
            continue
        keys = _keys_of(keyword.value, scope, functions, depth=0)
        if keys is None:
            open_ends += 1
        else:
            names |= keys
    return names, open_ends


Functions = dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]]


def _functions(trees: Any) -> Functions:
    """Every function and method of handlers/ by name (for ``**helper(...)``)."""
    found: Functions = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.setdefault(node.name, []).append(node)
    return found


def _keys_of(node: ast.AST, scope: ast.AST, functions: Functions, depth: int) -> set[str] | None:
    """String keys of the mapping ``node`` evaluates to, as far as the source says; ``None``: unknown.

    A dict literal or ``dict(k=...)``; a name assigned such values (or ``name["K"] = ...``) in
    ``scope``; a call of a handlers function, through the values it returns.
    """
    if depth > 4:
        return None
    if isinstance(node, ast.Dict):
        keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:  # {**other}
                keys |= _keys_of(v, scope, functions, depth + 1) or set()
        return keys
    if isinstance(node, ast.Call):
        callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if callee == "dict":
            return {k.arg for k in node.keywords if k.arg}
        found: set[str] | None = None
        for function in functions.get(callee, []):
            for sub in ast.walk(function):
                if isinstance(sub, ast.Return) and sub.value is not None:
                    keys = _keys_of(sub.value, function, functions, depth + 1)
                    if keys is not None:
                        found = (found or set()) | keys
        return found
    if isinstance(node, ast.Name):
        return _assigned_keys(scope, node.id, functions, depth)
    return None


def _assigned_keys(scope: ast.AST, name: str, functions: Functions, depth: int) -> set[str] | None:
    keys: set[str] | None = None
    for node in ast.walk(scope):
        targets: list[ast.AST] = []
        value: ast.AST | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name) and target.id == name and value is not None:
                found = _keys_of(value, scope, functions, depth + 1)
                if found is not None:
                    keys = (keys or set()) | found
            elif (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Name)
                and target.value.id == name
                and isinstance(target.slice, ast.Constant)
                and isinstance(target.slice.value, str)
            ):
                keys = (keys or set()) | {target.slice.value}
    return keys


# -- dynamic checks: real code paths through this botocore -----------------------------------------


class FakeAws:
    """Answers every call of the seam's clients without a network, by operation name.

    ``before-call`` answers come after botocore validated the parameters against its model (a
    wrong or unknown parameter raises ``ParamValidationError`` there); ``before-send`` answers
    are raw HTTP, so this botocore's serialiser, parser and retry/redirect handlers run too.
    Anything else that reaches the network is refused and recorded.
    """

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}  # operation -> parsed dict | ("error", code) | callable
        self.raw: dict[str, Any] = {}  # operation -> callable(request) -> (status, headers, body)
        self.calls: list[tuple[str, str, list[str]]] = []
        self.requests: list[tuple[str, str]] = []
        self.refused: list[str] = []
        self.default: dict[str, Any] | None = None  # the answer to operations not in ``answers``

    def attach(self, client: Any) -> None:
        client.meta.events.register("provide-client-params", self._record)
        client.meta.events.register("before-call", self._before_call)
        client.meta.events.register("before-send", self._before_send)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        self.calls.append((service, model.name, sorted(params)))

    def _before_call(self, model: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        qualified = f"{model.service_model.service_name}:{model.name}"
        if model.name in self.raw:
            return None
        if qualified in self.answers:
            answer = self.answers[qualified]
        elif model.name in self.answers:
            answer = self.answers[model.name]
        elif self.default is not None:
            answer = self.default
        else:
            return None
        if callable(answer):
            answer = answer()
        if isinstance(answer, tuple) and answer[0] == "error":
            error = {"Error": {"Code": answer[1], "Message": "stubbed"}, "ResponseMetadata": {}}
            return AWSResponse(None, 404, {}, None), error
        return AWSResponse(None, 200, {}, None), dict(answer, ResponseMetadata={"HTTPStatusCode": 200})

    def _before_send(self, request: Any, event_name: str = "", **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        operation = event_name.split(".")[-1]  # before-send.<service>.<Operation>
        self.requests.append((operation, request.url))
        handler = self.raw.get(operation)
        if handler is None:
            self.refused.append(f"{operation} {request.method} {request.url}")
            return AWSResponse(request.url, 500, {}, _Raw(b"<Error><Code>NoNetwork</Code></Error>"))
        status, headers, body = handler(request)
        return AWSResponse(request.url, status, headers, _Raw(body))


class _Raw:
    """The raw body of a canned HTTP response."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def _fresh_clients(fake: FakeAws) -> None:
    from handlers.response import aws_clients

    aws_clients.reset_clients()
    aws_clients.add_client_hook(fake.attach)


def _bucket_xml(names: list[str], regions: dict[str, str], token: str | None) -> bytes:
    buckets = "".join(
        "<Bucket>"
        + (f"<Name>{name}</Name>" if name else "")
        + "<CreationDate>2026-01-01T00:00:00.000Z</CreationDate>"
        + (f"<BucketRegion>{regions[name]}</BucketRegion>" if name in regions else "")
        + "</Bucket>"
        for name in names
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Owner><ID>owner</ID></Owner><Buckets>{buckets}</Buckets>"
        + (f"<ContinuationToken>{token}</ContinuationToken>" if token else "")
        + "</ListAllMyBucketsResult>"
    ).encode()


BUCKETS = ["alpha", "bravo", "charlie"]
REGIONS = {"alpha": HOME, "bravo": OTHER, "charlie": "us-east-1"}


def _fake_s3_listing(fake: FakeAws) -> None:
    """ListBuckets as S3 answers it over HTTP: pages when asked for, every bucket otherwise.

    Every response carries ``BucketRegion`` and one bucket entry without a ``Name``: an older
    parser drops what it does not model, the listing skips and counts what is malformed.
    """
    from urllib.parse import parse_qs, urlsplit

    def answer(request: Any) -> tuple[int, dict[str, str], bytes]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        size = int(query.get("max-buckets", 10_000))
        start = int(query.get("continuation-token", "0"))
        names = [*BUCKETS, ""]  # "": an entry without a Name
        page = names[start : start + size]
        token = str(start + size) if start + size < len(names) else None
        return 200, {"Content-Type": "application/xml"}, _bucket_xml(page, REGIONS, token)

    fake.raw["ListBuckets"] = answer


def check_list_xml(probe: Probe) -> None:
    """list_buckets over raw HTTP: paged when the model has it (page size 2), one call otherwise."""
    from handlers.sweep import bucket_listing

    fake = FakeAws()
    _fresh_clients(fake)
    _fake_s3_listing(fake)
    saved = bucket_listing.LIST_PAGE_SIZE
    bucket_listing.LIST_PAGE_SIZE = 2
    try:
        listing = bucket_listing.list_bucket_refs(HOME)
    finally:
        bucket_listing.LIST_PAGE_SIZE = saved
    names = [ref.name for ref in listing.refs]
    if names != BUCKETS:
        probe.fail(f"list_buckets over HTTP listed {names}, expected {BUCKETS}")
    if listing.skipped != 1:
        probe.fail(f"the entry without a Name was counted {listing.skipped} times, expected 1")
    if fake.refused:
        probe.fail(f"unexpected requests: {fake.refused}")
    urls = [url for op, url in fake.requests if op == "ListBuckets"]
    result = {
        "paged": listing.paged,
        "requests": len(urls),
        "regions": [ref.region for ref in listing.refs],
        "skipped": listing.skipped,
    }
    if listing.paged:
        if "max-buckets=2" not in urls[0] or "continuation-token=2" not in urls[-1] or len(urls) != 2:
            probe.fail(f"paged ListBuckets sent {urls}")
        has_region = "BucketRegion" in probe.model("s3").shape_for("Bucket").members
        expected = [REGIONS[n] for n in BUCKETS] if has_region else [None] * len(BUCKETS)
        if result["regions"] != expected:
            probe.fail(f"paged regions {result['regions']}, expected {expected}")
        probe.checks["list-paged-xml"] = result
        probe.checks["list-unpaged-forced"] = _forced_unpaged(probe)
        return
    if len(urls) != 1 or "max-buckets" in urls[0]:
        probe.fail(f"unpaged ListBuckets sent {urls}")
    probe.checks["list-unpaged-xml"] = result


def _forced_unpaged(probe: Probe) -> dict[str, Any]:
    """The fallback under a model that has pagination: force the detection off."""
    from handlers.sweep import bucket_listing

    fake = FakeAws()
    _fresh_clients(fake)
    _fake_s3_listing(fake)
    saved = bucket_listing.supports_paging
    bucket_listing.supports_paging = lambda s3: False
    try:
        listing = bucket_listing.list_bucket_refs(HOME)
    finally:
        bucket_listing.supports_paging = saved
    urls = [url for op, url in fake.requests if op == "ListBuckets"]
    if [r.name for r in listing.refs] != BUCKETS or len(urls) != 1 or "max-buckets" in urls[0]:
        probe.fail(f"forced unpaged listing: {listing.refs} via {urls}")
    return {"requests": len(urls), "buckets": len(listing.refs)}


def check_list_stubber(probe: Probe) -> dict[str, Any]:
    """list_buckets with botocore's Stubber (expected parameters), both shapes where the model has them."""
    from botocore.stub import Stubber

    from handlers.response import aws_clients
    from handlers.sweep import bucket_listing

    result: dict[str, Any] = {}
    aws_clients.reset_clients()
    s3 = aws_clients.client("s3", HOME)
    owner = {"ID": "owner"}
    if bucket_listing.supports_paging(s3):
        with Stubber(s3) as stub:
            size = bucket_listing.LIST_PAGE_SIZE
            first = {"Buckets": [{"Name": "alpha"}], "Owner": owner, "ContinuationToken": "t1"}
            stub.add_response("list_buckets", first, {"MaxBuckets": size})
            last = {"Buckets": [{"Name": "bravo"}], "Owner": owner}
            stub.add_response("list_buckets", last, {"MaxBuckets": size, "ContinuationToken": "t1"})
            refs = bucket_listing.list_buckets(HOME)
            stub.assert_no_pending_responses()
        result["paged"] = [r.name for r in refs]
    aws_clients.reset_clients()
    s3 = aws_clients.client("s3", HOME)
    saved = bucket_listing.supports_paging
    bucket_listing.supports_paging = lambda client: False
    try:
        with Stubber(s3) as stub:
            stub.add_response("list_buckets", {"Buckets": [{"Name": "alpha"}], "Owner": owner}, {})
            refs = bucket_listing.list_buckets(HOME)
            stub.assert_no_pending_responses()
    finally:
        bucket_listing.supports_paging = saved
    result["unpaged"] = [r.name for r in refs]
    if result["unpaged"] != ["alpha"] or result.get("paged", ["alpha", "bravo"]) != ["alpha", "bravo"]:
        probe.fail(f"list_buckets under Stubber: {result}")
    return result


def check_list_malformed(probe: Probe) -> dict[str, Any]:
    """Malformed entries (not objects, no or empty or non-string Name) are skipped and counted."""
    from handlers.sweep import bucket_listing

    fake = FakeAws()
    _fresh_clients(fake)
    good = {"Name": "alpha", "BucketRegion": OTHER}
    fake.answers["ListBuckets"] = {"Buckets": ["x", None, {}, {"Name": ""}, {"Name": 5}, good, good]}
    listing = bucket_listing.list_bucket_refs(HOME)
    if [(r.name, r.region) for r in listing.refs] != [("alpha", OTHER)]:
        probe.fail(f"malformed page gave {listing.refs}")
    if listing.skipped != 5 or listing.duplicates != 1:
        probe.fail(f"malformed page: skipped {listing.skipped} (expected 5), duplicates {listing.duplicates}")
    fake.answers["ListBuckets"] = {"Buckets": "not a list"}
    listing = bucket_listing.list_bucket_refs(HOME)
    if listing.refs or listing.malformed_pages != 1:
        probe.fail(f"a page whose Buckets is not a list gave {listing}")
    return {"skipped": 5, "duplicates": 1}


def _not_set(code: str) -> tuple[str, str]:
    return ("error", code)


def check_read_bucket_state(probe: Probe) -> dict[str, Any]:
    """exposure.read_bucket_state for one bucket: every read passes this botocore's validation."""
    from demo.policy_documents import public_read_policy
    from handlers.response import exposure

    fake = FakeAws()
    _fresh_clients(fake)
    _answer_public_bucket(fake, {"Policy": json.dumps(public_read_policy("alpha"))})
    state = exposure.read_bucket_state("alpha", ACCOUNT, HOME)
    if state.failures:
        probe.fail(f"read_bucket_state failures under this botocore: {state.failures}")
    if fake.refused:
        probe.fail(f"read_bucket_state reached the network: {fake.refused}")
    assessed = exposure.assess_bucket(state)
    probe.checks["assessed"] = assessed["status"]
    return {"calls": sorted({f"{s}:{op}" for s, op, _ in fake.calls})}


def _answer_public_bucket(fake: FakeAws, policy: Any) -> None:
    """Answers for a bucket AWS calls public, with ``policy`` the GetBucketPolicy answer and nothing
    else set; reads other engineers add later get an empty answer."""
    fake.answers.update(
        {
            "GetBucketPolicyStatus": {"PolicyStatus": {"IsPublic": True}},
            "GetBucketPolicy": policy,
            "GetBucketAcl": {"Owner": {"ID": "owner"}, "Grants": []},
            "GetPublicAccessBlock": _not_set("NoSuchPublicAccessBlockConfiguration"),
            "GetBucketOwnershipControls": _not_set("OwnershipControlsNotFoundError"),
            "GetBucketTagging": _not_set("NoSuchTagSet"),
        }
    )
    _answer_unknown_reads(fake)


def _answer_unknown_reads(fake: FakeAws) -> None:
    """Reads other engineers add later (access points, ...) get an empty answer, not the network."""
    fake.default = {}


def check_remediate_enforce(probe: Probe) -> dict[str, Any]:
    """remediation.remediate in enforce for one bucket: the put and the read-back, through this botocore."""
    from handlers.response import exposure, remediation

    fake = FakeAws()
    _fresh_clients(fake)
    _answer_public_bucket(fake, _not_set("NoSuchBucketPolicy"))
    state = exposure.read_bucket_state("alpha", ACCOUNT, HOME)
    assessed = exposure.assess_bucket(state)
    fake.answers["PutPublicAccessBlock"] = {}
    fake.answers["GetPublicAccessBlock"] = {"PublicAccessBlockConfiguration": dict(remediation.ALL_ON)}
    finding = _bucket_finding("alpha")
    result = remediation.remediate(
        finding, assessed, _Unapproved(), mode="enforce", account=ACCOUNT, allow_account=False
    )
    puts = [c for c in fake.calls if c[1] == "PutPublicAccessBlock"]
    if result.get("status") != "applied" or result.get("error") or not puts:
        probe.fail(f"remediate(enforce) under this botocore: {result.get('status')} {result.get('error')}")
    return {"status": result.get("status"), "put": puts[0][2] if puts else None}


class _Unapproved:
    """An approval that does not approve (only ``approved``/``reason``-like fields are read)."""

    approved = False
    basis = None
    state = "none"
    reason = "not approved"

    def __getattr__(self, name: str) -> Any:
        return None


def _bucket_finding(bucket: str) -> dict[str, Any]:
    return {
        "eventID": "probe-1",
        "eventName": "PutBucketPolicy",
        "eventTime": "2026-01-01T00:00:00Z",
        "account": ACCOUNT,
        "region": HOME,
        "bucket": bucket,
        "key": None,
        "accessPoint": None,
        "public": True,
        "verdict": "public",
        "kind": "policy",
        "scope": "bucket",
        "access": ["read"],
        "principals": ["*"],
        "variant": "body",
        "route": "public-body",
        "client": "cli",
        "actor": "arn:aws:iam::111122223333:user/probe",
        "sourceIPAddress": "192.0.2.1",
        "userAgent": "probe",
        "severity": "high",
        "reasons": ["probe"],
        "error": None,
    }


def check_region_redirect(probe: Probe) -> dict[str, Any]:
    """A bucket read through a home-region client follows S3's 301 to the bucket's region, once.

    This is what an unpaged listing (no BucketRegion) relies on: the handlers' reads and the
    remediation's put, sent to the wrong region, are re-signed and resent by this botocore.
    """
    from handlers.response import aws_clients

    fake = FakeAws()
    _fresh_clients(fake)

    def redirect_or(body: bytes) -> Any:
        def answer(request: Any) -> tuple[int, dict[str, str], bytes]:
            if OTHER not in request.url:
                error = (
                    "<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to "
                    "access must be addressed using the specified endpoint.</Message>"
                    f"<Endpoint>alpha.s3.{OTHER}.amazonaws.com</Endpoint><Bucket>alpha</Bucket></Error>"
                )
                return 301, {"x-amz-bucket-region": OTHER}, error.encode()
            return 200, {}, body

        return answer

    fake.raw["GetBucketPolicyStatus"] = redirect_or(b"<PolicyStatus><IsPublic>true</IsPublic></PolicyStatus>")
    fake.raw["PutPublicAccessBlock"] = redirect_or(b"")
    s3 = aws_clients.client("s3", HOME)
    owner = {"Bucket": "alpha", "ExpectedBucketOwner": ACCOUNT}
    status = s3.get_bucket_policy_status(**owner)
    flags = dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    s3.put_public_access_block(PublicAccessBlockConfiguration=flags, **owner)
    hosts = [url.split("/")[2] for _, url in fake.requests]
    if status["PolicyStatus"]["IsPublic"] is not True:
        probe.fail(f"redirected GetBucketPolicyStatus parsed {status}")
    if len(hosts) != 3 or HOME not in hosts[0] or not all(OTHER in h for h in hosts[1:]):
        probe.fail(f"expected one redirect, then the bucket's region from the client's cache: {hosts}")
    if fake.refused:
        probe.fail(f"redirect check: unexpected requests {fake.refused}")
    return {"hosts": hosts}


def probe_main() -> None:
    sys.path.insert(0, str(REPO))
    probe = Probe()
    probe.run("imports", check_imports)
    probe.run("permissions", check_permissions)
    probe.run("call-parameters", check_call_parameters)
    probe.run("list-xml", check_list_xml)
    probe.run("list-stubber", check_list_stubber)
    probe.run("list-malformed", check_list_malformed)
    probe.run("read-bucket-state", check_read_bucket_state)
    probe.run("remediate-enforce", check_remediate_enforce)
    probe.run("region-redirect", check_region_redirect)
    probe.report()


if __name__ == "__main__":
    probe_main()
