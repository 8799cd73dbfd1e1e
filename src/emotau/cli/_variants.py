"""`emotau variants list` and `emotau variants show`."""

from __future__ import annotations

import click

from emotau.cli._common import _console


@click.group()
def variants() -> None:
    """List variants and show the exact user prompt they produce."""


@variants.command("list")
@click.option("--variants-file", multiple=True, type=click.Path(dir_okay=False))
def variants_list(variants_file: tuple[str, ...]) -> None:
    """Every available variant with its emotion and description."""
    from rich.table import Table

    from emotau.episode import INTENSITIES, VariantLibrary

    lib = VariantLibrary.default(variants_file)
    table = Table(title="Variants (compose with '+', set intensity with ':mild|:moderate|:severe')")
    for col in ("name", "emotion", "intensities", "source", "description"):
        table.add_column(col)
    for v in lib:
        table.add_row(
            v.name,
            v.emotion or "-",
            "-" if v.is_control else ",".join(INTENSITIES),
            v.source,
            v.description,
        )
    _console().print(table)


@variants.command("show")
@click.argument("name")
@click.option("--task", "task_id", type=int, default=0, show_default=True)
@click.option("--domain", "--env", "domain", default="hotel", show_default=True)
@click.option("--user-strategy", default="llm", show_default=True)
@click.option("--variants-file", multiple=True, type=click.Path(dir_okay=False))
def variants_show(
    name: str, task_id: int, domain: str, user_strategy: str, variants_file: tuple[str, ...]
) -> None:
    """Print the exact user system prompt an episode of NAME would get."""
    from emotau.core import UserError
    from emotau.domains import load_domain
    from emotau.episode import USER_STRATEGIES, VariantLibrary, build_user_prompt

    sel = VariantLibrary.default(variants_file).select(name)
    dom = load_domain(domain)
    tasks = dom.tasks()
    if not 0 <= task_id < len(tasks):
        raise UserError(
            f"task id {task_id} out of range: domain {dom.name!r} has 0..{len(tasks) - 1}"
        )
    task = tasks[task_id]
    strategy = USER_STRATEGIES.get(user_strategy)
    prompt = build_user_prompt(dom, task, strategy, sel).text
    click.echo(
        f"# variant {sel.label} | domain {dom.name} task {task.id} | user strategy "
        f"{strategy.name} | injected text sha256 {sel.text_sha256[:12]}",
        err=True,
    )
    click.echo(prompt)
