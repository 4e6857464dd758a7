"""A step's title as a message id and its arguments, translated when a page shows it.

Why: a run's titles are written once, when its plan is made, in whatever language the person
who started it used; the page must show them in the reader's language. So a plan marks each
title for translation where it writes it (`gettext_noop`, found by makemessages) and the
step stores the id and the arguments; `display` renders them with gettext at display time.
The English text is stored too (`english`), for the admin and for rows older than the ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext, gettext_noop


@dataclass(frozen=True)
class StepTitle:
    """`msgid` is an English gettext id, with `%(name)s` placeholders filled from `args`."""

    msgid: str
    args: dict[str, Any] = field(default_factory=dict)

    def english(self) -> str:
        return render(self.msgid, self.args, translate=False)

    def display(self) -> str:
        return render(self.msgid, self.args)


def title(msgid: str, **args: Any) -> StepTitle:
    """A step title; `msgid` must be a literal wrapped in gettext_noop where it is written."""
    return StepTitle(msgid, args)


def render(msgid: str, args: dict[str, Any], *, translate: bool = True,
           fallback: str = "") -> str:
    """The title in the active language (or English), or `fallback` when the stored
    arguments do not fit the text (a catalogue that drifted must not break a page)."""
    text = gettext(msgid) if translate else msgid
    if not args:
        return text
    try:
        return text % args
    except (KeyError, TypeError, ValueError):
        return fallback or msgid


# Titles only runs made by earlier versions carry (migration 0008 gave those rows their id);
# marked here so the catalogue keeps their translations.
OLDER_TITLES = (
    gettext_noop("Fetch and rewrite the kubeconfig"),
    gettext_noop("Verify the API through the SLB"),
)
