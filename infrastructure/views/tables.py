"""The rows of the Workers and Worker Pools tables and the workers filter's options, written in one pass.

With 50 rows a page, the template engine spent most of the page's time here: a variable lookup, a filter or
a tag per cell, about a thousand a page. These functions write the same markup from the same values, each
escaped as {{ value }} escapes it, so a full page costs little more than an empty one (bench/pool_pages.py).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence

from django.contrib.humanize.templatetags.humanize import naturaltime
from django.forms import BoundField
from django.template.defaultfilters import truncatechars
from django.utils.formats import localize
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import template_localtime

from infrastructure.models import Worker, WorkerPool


def _escape(value: object) -> str:
    """What {{ value }} writes: django.utils.html.conditional_escape (safe HTML as it is, anything else through
    html.escape(str(value))) without its lazy-string checks, paid once per value and several hundred times a page."""
    return value.__html__() if hasattr(value, "__html__") else html.escape(str(value))


def select_options(field: BoundField) -> SafeString:
    """A choice field's <option>s, the one whose value the form holds selected."""
    current = str(field.value())
    return mark_safe(
        "".join(
            f'<option value="{_escape(value)}"{" selected" if str(value) == current else ""}>{_escape(label)}</option>'
            for value, label in field.field.choices
        )
    )


_WORKER_ROW = (
    '\n  <tr data-worker="{name}"><td><a href="{url}{pk}/">{name}</a>{disabled}</td>\n'
    '    <td><span class="badge badge-health-{health}">{health_label}</span></td>\n'
    '    <td class="small">{pools}</td>\n'
    '    <td class="small">{style}</td><td class="small"><code>{endpoint}</code></td>\n'
    '    <td class="small text-muted">{last_check}</td></tr>\n  '
)


def worker_rows(
    workers: Iterable[Worker], pools_of: Mapping[int, Sequence[tuple[int, str]]], *, workers_url: str, pools_url: str
) -> SafeString:
    """The Workers table's rows: name (and a disabled badge), health, pools, style, endpoint, last check.
    pools_of: each worker's (pool id, name) in pool order."""
    workers_url, pools_url = _escape(workers_url), _escape(pools_url)
    return mark_safe("".join(_worker_row(w, pools_of.get(w.pk, ()), workers_url, pools_url) for w in workers))


def _worker_row(worker: Worker, pools: Sequence[tuple[int, str]], workers_url: str, pools_url: str) -> str:
    checked = worker.last_health_check
    last_check = (
        f'<span title="{_escape(localize(template_localtime(checked)))}">{_escape(naturaltime(checked))}</span>'
        if checked
        else "never"
    )
    return _WORKER_ROW.format(
        name=_escape(worker.name),
        url=workers_url,
        pk=worker.pk,
        disabled=' <span class="badge text-bg-secondary">disabled</span>' if worker.is_disabled else "",
        health=_escape(worker.health_status),
        health_label=_escape(worker.get_health_status_display()),
        pools=", ".join(f'<a class="link-secondary" href="{pools_url}{pk}/">{_escape(name)}</a>' for pk, name in pools),
        style=_escape(worker.get_communication_style_display()),
        endpoint=_escape(worker.endpoint_uri),
        last_check=last_check,
    )


# (status, how its count reads) in the order the badges show
_HEALTH_COUNTS = [
    (Worker.HealthStatus.HEALTHY, "healthy"),
    (Worker.HealthStatus.HAS_WARNINGS, "with warnings"),
    (Worker.HealthStatus.UNHEALTHY, "unhealthy"),
    (Worker.HealthStatus.UNAVAILABLE, "unavailable"),
    (Worker.HealthStatus.UNKNOWN, "unknown"),
]


def worker_pool_rows(pools: Sequence[WorkerPool], *, pools_url: str, may_edit: bool, csrf_input: str) -> SafeString:
    """The Worker Pools table's rows, from pools_with_health_counts(); the move buttons for those who may edit
    (csrf_input: the hidden token field, already HTML, each of their forms carries)."""
    pools_url, last = _escape(pools_url), len(pools) - 1
    rows = "".join(_worker_pool_row(pool, i, last, pools_url, may_edit, csrf_input) for i, pool in enumerate(pools))
    return mark_safe(rows + "\n")


_POOL_ROW = (
    '\n<tr data-pool="{name}">\n'
    '  <td><a class="fw-semibold" href="{url}{pk}/">{name}</a>\n'
    "    {default}\n"
    "    {dynamic}\n"
    "    {description}</td>\n"
    '  <td class="text-end">{count}</td>\n'
    '  <td class="health-counts">{counts}</td>\n'
    "  {moves}\n"
    "</tr>\n"
)
_POOL_MOVES = (
    '<td class="text-end text-nowrap">\n'
    '    <form class="d-inline" method="post" action="{url}{pk}/move/up/">{csrf}'
    '<button class="btn btn-sm btn-outline-secondary border-0" title="Move {name} up"'
    ' aria-label="Move {name} up" {first}><i class="bi bi-arrow-up"></i></button></form>\n'
    '    <form class="d-inline" method="post" action="{url}{pk}/move/down/">{csrf}'
    '<button class="btn btn-sm btn-outline-secondary border-0" title="Move {name} down"'
    ' aria-label="Move {name} down" {last}><i class="bi bi-arrow-down"></i></button></form>\n'
    "  </td>"
)


def _worker_pool_row(pool: WorkerPool, i: int, last: int, pools_url: str, may_edit: bool, csrf_input: str) -> str:
    dynamic = pool.pool_type == WorkerPool.PoolType.DYNAMIC
    name = _escape(pool.name)
    counts = []
    for status, label in _HEALTH_COUNTS:
        n = getattr(pool, f"count_{status}")
        counts.append(f'<span class="badge badge-health-{status}">{n} {label}</span> ' if n else "")
    counts.append(
        f'<span class="badge text-bg-light border">{pool.disabled_count} disabled</span>' if pool.disabled_count else ""
    )
    if pool.worker_count:
        counts.append("")
    elif dynamic:
        counts.append('<span class="text-muted small">workers are leased on demand</span>')
    elif pool.is_default:
        counts.append('<span class="text-muted small">no workers: server steps use the built-in worker</span>')
    else:
        counts.append('<span class="text-muted small">no workers yet</span>')
    moves = (
        _POOL_MOVES.format(
            url=pools_url,
            pk=pool.pk,
            csrf=csrf_input,
            name=name,
            first="disabled" if i == 0 else "",
            last="disabled" if i == last else "",
        )
        if may_edit
        else ""
    )
    description = truncatechars(pool.description, 160)
    return _POOL_ROW.format(
        name=name,
        url=pools_url,
        pk=pool.pk,
        default='<span class="badge text-bg-primary">default</span>' if pool.is_default else "",
        dynamic=f'<span class="badge text-bg-info">dynamic · {_escape(pool.worker_type)}</span>' if dynamic else "",
        description=f'<div class="small text-muted">{_escape(description)}</div>' if pool.description else "",
        count=pool.worker_count,
        counts="\n    ".join(counts),
        moves=moves,
    )
