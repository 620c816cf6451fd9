"""The rows of the Workers and Worker Pools tables and the workers filter's options, written in one pass.

With 50 rows a page, the template engine spent most of the page's time here: a variable lookup, a filter or
a tag per cell, about a thousand a page. These functions write the same markup from the same values with
format_html (escaped alike), so a full page costs little more than an empty one (bench/pool_pages.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from django.contrib.humanize.templatetags.humanize import naturaltime
from django.forms import BoundField
from django.template.defaultfilters import truncatechars
from django.utils.formats import localize
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import template_localtime

from infrastructure.models import Worker, WorkerPool

_DISABLED_BADGE = mark_safe(' <span class="badge text-bg-secondary">disabled</span>')


def select_options(field: BoundField) -> SafeString:
    """A choice field's <option>s, the one whose value the form holds selected."""
    current = str(field.value())
    return format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        ((value, " selected" if str(value) == current else "", label) for value, label in field.field.choices),
    )


def worker_rows(
    workers: Iterable[Worker], pools_of: Mapping[int, Sequence[tuple[int, str]]], *, workers_url: str, pools_url: str
) -> SafeString:
    """The Workers table's rows: name (and a disabled badge), health, pools, style, endpoint, last check."""
    return mark_safe("".join(_worker_row(w, pools_of.get(w.pk, ()), workers_url, pools_url) for w in workers))


def _worker_row(worker: Worker, pools: Sequence[tuple[int, str]], workers_url: str, pools_url: str) -> str:
    pool_links = format_html_join(
        ", ", '<a class="link-secondary" href="{}{}/">{}</a>', ((pools_url, pk, name) for pk, name in pools)
    )
    checked = worker.last_health_check
    last_check = (
        format_html('<span title="{}">{}</span>', localize(template_localtime(checked)), naturaltime(checked))
        if checked
        else "never"
    )
    return format_html(
        '\n  <tr data-worker="{name}"><td><a href="{url}{pk}/">{name}</a>{disabled}</td>\n'
        '    <td><span class="badge badge-health-{health}">{health_label}</span></td>\n'
        '    <td class="small">{pools}</td>\n'
        '    <td class="small">{style}</td><td class="small"><code>{endpoint}</code></td>\n'
        '    <td class="small text-muted">{last_check}</td></tr>\n  ',
        name=worker.name,
        url=workers_url,
        pk=worker.pk,
        disabled=_DISABLED_BADGE if worker.is_disabled else "",
        health=worker.health_status,
        health_label=worker.get_health_status_display(),
        pools=pool_links,
        style=worker.get_communication_style_display(),
        endpoint=worker.endpoint_uri,
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
    (csrf_input: the hidden token field each of their forms carries)."""
    last = len(pools) - 1
    rows = "".join(_worker_pool_row(pool, i, last, pools_url, may_edit, csrf_input) for i, pool in enumerate(pools))
    return mark_safe(rows + "\n")


def _worker_pool_row(pool: WorkerPool, i: int, last: int, pools_url: str, may_edit: bool, csrf_input: str) -> str:
    dynamic = pool.pool_type == WorkerPool.PoolType.DYNAMIC
    counts = []
    for status, label in _HEALTH_COUNTS:
        n = getattr(pool, f"count_{status}")
        counts.append(format_html('<span class="badge badge-health-{}">{} {}</span> ', status, n, label) if n else "")
    counts.append(
        format_html('<span class="badge text-bg-light border">{} disabled</span>', pool.disabled_count)
        if pool.disabled_count
        else ""
    )
    if pool.worker_count:
        counts.append("")
    else:
        empty = (
            "workers are leased on demand"
            if dynamic
            else "no workers: server steps use the built-in worker"
            if pool.is_default
            else "no workers yet"
        )
        counts.append(format_html('<span class="text-muted small">{}</span>', empty))
    moves = (
        format_html(
            '<td class="text-end text-nowrap">\n'
            '    <form class="d-inline" method="post" action="{url}{pk}/move/up/">{csrf}'
            '<button class="btn btn-sm btn-outline-secondary border-0" title="Move {name} up"'
            ' aria-label="Move {name} up" {first}><i class="bi bi-arrow-up"></i></button></form>\n'
            '    <form class="d-inline" method="post" action="{url}{pk}/move/down/">{csrf}'
            '<button class="btn btn-sm btn-outline-secondary border-0" title="Move {name} down"'
            ' aria-label="Move {name} down" {last}><i class="bi bi-arrow-down"></i></button></form>\n'
            "  </td>",
            url=pools_url,
            pk=pool.pk,
            csrf=csrf_input,
            name=pool.name,
            first=mark_safe("disabled" if i == 0 else ""),
            last=mark_safe("disabled" if i == last else ""),
        )
        if may_edit
        else ""
    )
    return format_html(
        '\n<tr data-pool="{name}">\n'
        '  <td><a class="fw-semibold" href="{url}{pk}/">{name}</a>\n'
        "    {default}\n"
        "    {dynamic}\n"
        "    {description}</td>\n"
        '  <td class="text-end">{count}</td>\n'
        '  <td class="health-counts">{counts}</td>\n'
        "  {moves}\n"
        "</tr>\n",
        name=pool.name,
        url=pools_url,
        pk=pool.pk,
        default=mark_safe('<span class="badge text-bg-primary">default</span>') if pool.is_default else "",
        dynamic=format_html('<span class="badge text-bg-info">dynamic · {}</span>', pool.worker_type)
        if dynamic
        else "",
        description=format_html('<div class="small text-muted">{}</div>', truncatechars(pool.description, 160))
        if pool.description
        else "",
        count=pool.worker_count,
        counts=mark_safe("\n    ".join(counts)),
        moves=moves,
    )
