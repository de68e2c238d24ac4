"""Options shared by several commands, declared once (the way sqlite-utils does it).

Each helper is a decorator that adds a group of click options to a command, so `sample`
and `enqueue resample` take exactly the same sampling options, and every command takes
the same `--db`. Choices that name plug-ins (backends, strategies, formats, references,
job kinds) come from the registries in core through `RegistryChoice`, which imports the
registry only when the choices are needed (parsing or a subcommand's help), so `ambiscope
--help` stays free of numpy, torch and textual.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "ambiscope.db"
DB_ENV = "AMBISCOPE_DB"
_DB_KEY = "ambiscope.db"  # ctx.meta (shared by the whole context tree): the --db given last
FILTER_HELP = "Clip filter, e.g. 'ambiguity:high disagree -flag:bad' (terms ANDed; see README)."


# ----------------------------------------------------------------- choices
def _names(ref: str) -> tuple[str, ...]:
    """The names at ``"module:attr"``: a registry's, a tuple, or what a function returns."""
    module, _, attr = ref.partition(":")
    found = getattr(importlib.import_module(module), attr)
    if hasattr(found, "names"):
        return tuple(found.names())
    return tuple(found() if callable(found) else found)


class RegistryChoice(click.Choice):
    """A click.Choice whose choices are a registry's names, read on first use."""

    def __init__(self, registry: str) -> None:
        self.registry = registry
        self.case_sensitive = True
        self._choices: tuple[str, ...] | None = None

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        if self._choices is None:
            self._choices = _names(self.registry)
        return self._choices


class RegistryNames(click.ParamType):
    """A comma list of a registry's names, checked against the registry, or `all`.

    `every` names what `all` stands for when a command handles only some entries (the
    benchmark table: the metrics its bootstrap computes); default: every entry.
    """

    name = "names"

    def __init__(self, registry: str, *, every: str | None = None) -> None:
        self.registry = registry
        self.every = every or registry

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        known = _names(self.registry)
        names = tuple(n.strip() for n in str(value).split(",") if n.strip())
        if names == ("all",):
            return _names(self.every)
        unknown = [n for n in names if n not in known]
        if unknown:
            self.fail(f"unknown {', '.join(unknown)} (known: {', '.join(known)}, all)", param, ctx)
        return names


CORPUS_FORMATS = "ambiscope.core.corpora:FORMATS"
BACKENDS = "ambiscope.core.alm:BACKENDS"
MODES = "ambiscope.core.alm.prompts:MODES"
STRATEGIES = "ambiscope.core.scaling.strategies:STRATEGIES"
METRICS = "ambiscope.core.metrics:METRICS"
TABLE_FORMATS = "ambiscope.core.export:TABLE_FORMATS"
SUBSET_FORMATS = "ambiscope.core.export:SUBSET_FORMATS"
REFERENCES = "ambiscope.core.reference:REFERENCES"
JOB_KINDS = "ambiscope.core.jobs.kinds:JOB_KINDS"


# ---------------------------------------------------------------------- --db
def _remember_db(ctx: click.Context, _param: click.Parameter, value: str | None) -> Path:
    """The workspace: this command's --db, else one given before it, $AMBISCOPE_DB, default."""
    if value is not None:
        ctx.meta[_DB_KEY] = Path(value)
    return ctx.meta.get(_DB_KEY) or Path(os.environ.get(DB_ENV) or DEFAULT_DB)


def _allow_network_fs(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        from ambiscope.db.mounts import allow_network_fs

        allow_network_fs()


def db_option(func: F | None = None, *, expose_value: bool = True) -> Any:
    """`--db PATH`, accepted before and after the command name; passes `db: Path`.

    ``@db_option(expose_value=False)`` on commands that need no workspace keeps `--db`
    valid in every position without handing them an unused argument. It brings the
    other workspace-wide flag, `--allow-network-fs`, which every command that opens a
    workspace needs in the same positions; it sets the process-wide permission
    (`ambiscope.db.mounts.allow_network_fs`), so no command handles it.
    """
    option = option_group(
        [
            click.option(
                "--db",
                type=click.Path(dir_okay=False),
                callback=_remember_db,
                expose_value=expose_value,
                help=f"Workspace file (SQLite; default ${DB_ENV} or ./{DEFAULT_DB}).",
            ),
            click.option(
                "--allow-network-fs",
                is_flag=True,
                expose_value=False,
                callback=_allow_network_fs,
                help="Write the workspace even on NFS/SMB/SSHFS (SQLite's locking breaks "
                "there: only if one machine writes it; also $AMBISCOPE_ALLOW_NETWORK_FS=1).",
            ),
        ]
    )
    return option if func is None else option(func)


def option_group(options: Sequence[Callable[[F], F]]) -> Callable[[F], F]:
    """One decorator applying `options` in the order listed (first = first in --help)."""

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


# ------------------------------------------------------------- conventions
def set_pairs(_ctx: click.Context, _param: click.Parameter, value: Any) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in value or ():
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--set")
        pairs[name.strip()] = text
    from ambiscope.core.conventions import Conventions

    try:  # names and values are checked now (a usage error), whichever preset applies
        Conventions().with_overrides(pairs)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    return pairs


conventions_options = option_group(
    [
        click.option(
            "--preset",
            type=RegistryChoice("ambiscope.core.conventions:PRESETS"),
            default=None,
            help="Conventions preset (default: the workspace's, see `ambiscope config "
            "preset`; `scaling-ambiguity` reproduces Zhang et al.'s official code).",
        ),
        click.option(
            "--set",
            "set_conventions",
            multiple=True,
            metavar="NAME=VALUE",
            callback=set_pairs,
            help="Override one convention, e.g. --set ambiguity=rank-thirds (repeatable; "
            "`ambiscope config show` lists them).",
        ),
    ]
)
"""`--preset` and `--set`: every command whose numbers depend on conventions."""


def conventions_of(ws: Any, kw: dict[str, Any]) -> Any:
    """The Conventions for `conventions_options`' values (consumed from `kw`)."""
    from ambiscope.core.conventions import resolve

    return resolve(ws.get_meta, kw.pop("preset", None), kw.pop("set_conventions", None))


# ------------------------------------------------------------------ outputs
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
force_option = click.option(
    "--force",
    is_flag=True,
    help="Replace an earlier ambiscope export at OUT (never a folder holding the workspace "
    "or a corpus).",
)


def reference_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--reference",
        type=RegistryChoice(REFERENCES),
        default="human",
        show_default=True,
        help=help,
    )


def strategies_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--strategy", "strategies", type=RegistryChoice(STRATEGIES), multiple=True, help=help
    )


# ----------------------------------------------------------------- sampling
ray_options = [
    click.option(
        "--ray",
        "ray",
        is_flag=False,
        flag_value="local",
        default=None,
        metavar="[ADDRESS]",
        help="Run the model work on Ray actors (this process stays the only writer): "
        "HOST:PORT or ray://HOST:PORT of a cluster; alone, RAY_ADDRESS or a local instance.",
    ),
    click.option(
        "--ray-actors",
        type=click.IntRange(min=1),
        default=None,
        help="Ray: actors, each holding the model [default: one per GPU, or per endpoint].",
    ),
    click.option(
        "--ray-gpus",
        type=click.FloatRange(min=0),
        default=None,
        help="Ray: GPUs per actor [default: 1 for a local model on a cluster with GPUs].",
    ),
    click.option(
        "--ray-cpus",
        type=click.FloatRange(min=0.1),
        default=1.0,
        show_default=True,
        help="Ray: CPUs per actor (also its torch threads).",
    ),
]
"""Where a run's model work runs when it outgrows one process (`sample`,
`annotate-synthetic`, `enqueue`)."""


def model_options(*, max_new_tokens: int, prompt_help: str) -> Callable[[F], F]:
    """Which model answers, how it is run, and which clips: `sample` and `annotate-synthetic`."""
    return option_group(
        [
            click.option("--model", "-m", required=True, help="HF model id or checkpoint path."),
            click.option(
                "--backend",
                type=RegistryChoice(BACKENDS),
                default="transformers",
                show_default=True,
            ),
            click.option("--max-new-tokens", default=max_new_tokens, show_default=True),
            click.option(
                "--prompt",
                "prompt_file",
                type=click.Path(exists=True, dir_okay=False),
                help=prompt_help,
            ),
            click.option("--transcript", is_flag=True, help="Put the transcript into the prompt."),
            click.option("--name", help="A short name for the run."),
            click.option("--where", help=FILTER_HELP),
            click.option("--limit", type=int, help="At most this many clips."),
            click.option("--device", default="auto", show_default=True),
            click.option("--dtype", default="auto", show_default=True),
            click.option("--trust-remote-code", is_flag=True, help="Allow the model's own code."),
            click.option(
                "--base-url",
                multiple=True,
                help="openai backend: the endpoint, e.g. http://127.0.0.1:8000/v1; repeat it "
                "for replicas of the model (requests are spread over them).",
            ),
            click.option("--api-key-env", help="openai backend: NAME of the env var with the key."),
            click.option(
                "--concurrency",
                default=4,
                show_default=True,
                help="openai backend: requests in flight at once, across clips and replicas.",
            ),
            click.option(
                "--no-logprobs",
                "logprobs",
                is_flag=True,
                flag_value=False,
                default=True,
                help="openai backend: for APIs that refuse log-probabilities (BoN, the "
                "verifier and the likelihood are then skipped).",
            ),
            click.option("--timeout", default=120.0, show_default=True),
            click.option(
                "--batch-clips",
                type=click.IntRange(min=1),
                default=None,
                help="transformers: clips decoded in one batch [default: from free memory].",
            ),
            *ray_options,
        ]
    )


sampling_options = option_group(
    [
        click.option("--dataset", "-d", required=True, help="Dataset to sample."),
        model_options(max_new_tokens=48, prompt_help="Prompt template file (TOML/JSON)."),
        click.option(
            "--mode",
            type=RegistryChoice(MODES),
            default="label",
            show_default=True,
            help="What the model is asked to answer.",
        ),
        click.option("--n", "n", default=16, show_default=True, help="Candidates per clip."),
        click.option("--temperature", default=0.8, show_default=True),
        click.option("--top-p", type=float, default=None),
        click.option(
            "--search", type=click.Choice(["sample", "beam"]), default="sample", show_default=True
        ),
        click.option("--beams", default=4, show_default=True, help="Beams for --search beam."),
        click.option("--verifier", help="Verifier model for ALM-v strategies (`self`: same)."),
        click.option("--no-likelihood", is_flag=True, help="Skip the exact label-likelihood pass."),
        click.option("--seed", default=0, show_default=True),
    ]
)
"""Every option of a run spec plus the clip selection (`sample`, `enqueue resample`)."""


def base_urls(given: Any) -> str | tuple[str, ...] | None:
    """``--base-url`` given 0, 1 or several times: None, the URL, or the replicas."""
    urls = tuple(given) if isinstance(given, list | tuple) else ((given,) if given else ())
    return None if not urls else urls[0] if len(urls) == 1 else urls


def run_spec(kw: dict[str, Any]) -> tuple[Any, str | None, int | None]:
    """(RunSpec, where, limit) from `sampling_options`' values (consumed from `kw`)."""
    from ambiscope.core.scaling.run import RunSpec

    where, limit = kw.pop("where"), kw.pop("limit")
    kw["base_url"] = base_urls(kw.get("base_url"))
    kw["likelihood"] = not kw.pop("no_likelihood")
    return RunSpec(**kw), where, limit


# ---------------------------------------------------------------- progress
def progress_printer() -> Callable[[Any], None]:
    """Progress of `on_progress` callbacks on stderr.

    On a terminal: one bar redrawn in place with `\\r` (at most 5 times a second). When
    stderr is redirected (a log file, a CI job) a `\\r` would pile every redraw onto one
    line of the log, so plain lines are written instead, one per tenth of the work.
    """
    import sys
    import time

    in_place = sys.stderr.isatty()
    last = [0.0, -1.0]  # time of the last redraw, tenth of the work last logged

    def due(p: Any) -> bool:
        finished = p.done >= p.total
        if in_place:
            now = time.monotonic()
            if now - last[0] < 0.2 and not finished:
                return False
            last[0] = now
            return True
        tenth = 10 if finished else 10 * p.done // max(p.total, 1)
        if tenth <= last[1]:
            return False
        last[1] = tenth
        return True

    def show(p: Any) -> None:
        if not due(p):
            return
        rate = (p.done / p.elapsed) if p.elapsed > 0 else 0.0
        remaining = (p.total - p.done) / rate if rate > 0 else float("nan")
        eta = f"{remaining:5.0f}s" if remaining == remaining else "  ?  "
        width = 24
        filled = int(width * p.done / max(p.total, 1))
        bar = "#" * filled + "." * (width - filled)
        line = (
            f"[{bar}] {p.done}/{p.total} clips  {rate:5.2f} clips/s  ETA {eta}  failed {p.failed}"
        )
        if in_place:
            click.echo("\r" + line, err=True, nl=p.done >= p.total)
        else:
            click.echo(line, err=True)

    return show


def interrupted() -> SystemExit:
    """What Ctrl-C in a resumable loop ends with (finished clips are kept)."""
    click.echo("\ninterrupted: finished clips are saved; rerun to resume", err=True)
    return SystemExit(130)
