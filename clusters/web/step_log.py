"""A step's log as the page reads it beyond the live tail: jump to its start or to a line,
search it, download it (views in clusters/web/log_views.py).

Why these work on the stored log only: a step keeps its first and newest lines and one
marker row for what is between (clusters/engine/steplog.py), so every read here is bounded by
that, whatever the step printed. Nothing is kept elsewhere, so the download is what the page
can show, plus the markers, and it says at the top what was omitted. Every stored line was
redacted before it was stored; nothing here adds text from anywhere else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from clusters.models import LOG_OMITTED, LogLine, Run, Step

SEARCH_LIMIT = 100  # matching lines shown; the count says how many there are in all
SEARCH_MAX_QUERY = 200
SNIPPET_BEFORE = 60  # characters shown before the first match of a long line, and after
SNIPPET_AFTER = 160
HIT_CONTEXT = 20  # lines shown before a search hit when the log jumps to it
DOWNLOAD_CHUNK = 2000


def thousands(number: int) -> str:
    return f"{number:,}"


def omitted_text(lines: int, size: int) -> str:
    """The marker row's words (the same message id the page's template uses)."""
    return ngettext("… %(lines)s line (%(bytes)s bytes) omitted …",
                    "… %(lines)s lines (%(bytes)s bytes) omitted …", lines) % {
        "lines": thousands(lines), "bytes": thousands(size)}


def cut_text(chars: int) -> str:
    """What ends a line that was cut (the same message id the page's template uses)."""
    return _("… [cut %(n)s characters]") % {"n": thousands(chars)}


def owned_step(run: Run, step_id: int) -> Step:
    fields = ("id", "key", "title", "title_id", "title_args", "run_id")
    return get_object_or_404(Step.objects.only(*fields), pk=step_id, run_id=run.pk)


def _highlight(text: str, query: str) -> list[tuple[str, bool]]:
    """`text` (cut to a window around the first match when long) as parts, each marked
    whether it matches `query` (case-insensitively); the template escapes every part."""
    pattern = re.compile(re.escape(query), re.IGNORECASE)
    first = pattern.search(text)
    if first and len(text) > SNIPPET_BEFORE + SNIPPET_AFTER:
        start = max(0, first.start() - SNIPPET_BEFORE)
        end = min(len(text), first.end() + SNIPPET_AFTER)
        text = ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
    parts: list[tuple[str, bool]] = []
    at = 0
    for match in pattern.finditer(text):
        if match.start() > at:
            parts.append((text[at:match.start()], False))
        parts.append((match.group(), True))
        at = match.end()
    if at < len(text):
        parts.append((text[at:], False))
    return parts


def search(run: Run, step_id: int, query: str) -> dict[str, Any]:
    """The first SEARCH_LIMIT stored lines containing `query` (any case), and how many match
    in all: two queries over one step's rows, which the log's bound keeps small."""
    step = owned_step(run, step_id)
    query = query.strip()[:SEARCH_MAX_QUERY]
    found = {"step_id": step.pk, "run": run, "query": query, "hits": [], "total": 0}
    if not query:
        return found
    matches = LogLine.objects.filter(step_id=step.pk, text__icontains=query) \
        .exclude(stream=LOG_OMITTED)
    rows = list(matches.order_by("seq").values("seq", "text")[:SEARCH_LIMIT])
    found["total"] = len(rows) if len(rows) < SEARCH_LIMIT else matches.count()
    found["hits"] = [{"seq": row["seq"], "from": max(0, row["seq"] - 1 - HIT_CONTEXT),
                      "parts": _highlight(row["text"], query)} for row in rows]
    return found


def download_name(run: Run, step: Step) -> str:
    name = f"{run.cluster.name}-run{run.pk}-{step.key}.log"
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "-" for c in name)


def download_lines(run: Run, step: Step) -> Iterator[str]:
    """The stored log as text, a few thousand rows per query: a header that says what the
    log is and what was omitted, then each line, the marker and cut lines in words."""
    marker = LogLine.objects.filter(step_id=step.pk, stream=LOG_OMITTED).order_by("seq").first()
    yield "# " + _("Log of “%(step)s”, run %(run)s of cluster %(cluster)s") % {
        "step": step.display_title, "run": run.pk, "cluster": run.cluster.name} + "\n"
    if marker is not None:
        yield "# " + _(
            "The panel keeps a step's first and newest lines: %(omitted)s, from line "
            "%(line)s; they are not stored anywhere.") % {
            "omitted": omitted_text(marker.omitted_lines, marker.omitted_bytes),
            "line": thousands(marker.seq)} + "\n"
    after = 0
    while True:
        rows = list(LogLine.objects.filter(step_id=step.pk, seq__gt=after).order_by("seq")
                    .values_list("seq", "stream", "text", "cut_chars", "omitted_lines",
                                 "omitted_bytes")[:DOWNLOAD_CHUNK])
        if not rows:
            return
        parts = []
        for seq, stream, text, cut, lines, size in rows:
            if stream == LOG_OMITTED:
                parts.append(omitted_text(lines, size) + "\n")
            else:
                parts.append(text + (" " + cut_text(cut) if cut else "") + "\n")
            after = seq
        yield "".join(parts)
