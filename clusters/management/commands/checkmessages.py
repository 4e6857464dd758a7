"""Check the translations the way `make check` needs: nothing left in English by accident.

Why a command of its own: tests/ui/test_i18n.py reads the catalogue only, so a new string
wrapped in `_()` but never added to the .po passed it (the page just showed English). This
command also asks makemessages, on a copy of the tree (so locale/ is never rewritten), whether
the code holds a message the catalogue lacks.

Checks, for every locale/*/LC_MESSAGES/django.po:
* `msgfmt --check` accepts it (placeholders and plural forms match their msgid);
* no message is untranslated or fuzzy;
* makemessages (the options in the .po's header) adds no message that is untranslated or fuzzy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# What the .po header says to regenerate with (keep the two in step).
MAKEMESSAGES_IGNORES = (".venv", "sandbox", "tests", "var", "staticfiles", "test-artifacts")
# Copied for makemessages: the code and templates that hold messages, and what loads settings.
COPIED = ("manage.py", "panel", "clusters", "templates", "static", "locale", "tests")


class Command(BaseCommand):
    help = ("Fail when a message is untranslated or fuzzy, a .po fails msgfmt --check, or the "
            "code holds a message the catalogue lacks.")

    def handle(self, *args: Any, **options: Any) -> None:
        for tool in ("msgfmt", "msgattrib", "xgettext", "msgmerge"):
            if shutil.which(tool) is None:
                raise CommandError(f"{tool} is missing: apt-get install -y gettext")
        root = Path(settings.BASE_DIR)
        catalogues = sorted((root / "locale").glob("*/LC_MESSAGES/django.po"))
        if not catalogues:
            raise CommandError("no locale/*/LC_MESSAGES/django.po to check")
        problems = [problem for po in catalogues for problem in catalogue_problems(po)]
        problems += missing_messages(root, [po.parts[-3] for po in catalogues])
        if problems:
            raise CommandError("translations incomplete:\n  " + "\n  ".join(problems))
        self.stdout.write(f"translations complete: {', '.join(p.parts[-3] for p in catalogues)}")


def catalogue_problems(po: Path) -> list[str]:
    """msgfmt's verdict on one catalogue, and its untranslated and fuzzy messages."""
    checked = subprocess.run(["msgfmt", "--check", "--statistics", "-o", os.devnull, str(po)],
                             capture_output=True, text=True)
    if checked.returncode != 0:
        return [f"{po}: msgfmt --check: {checked.stderr.strip()}"]
    return [f"{po}: {line}" for line in unfinished(po)]


def unfinished(po: Path) -> list[str]:
    """The msgids of `po` that are untranslated or fuzzy (gettext's msgattrib decides)."""
    found = []
    for flag, what in (("--untranslated", "untranslated"), ("--only-fuzzy", "fuzzy")):
        listed = subprocess.run(["msgattrib", flag, "--no-obsolete", "--no-wrap", str(po)],
                                capture_output=True, text=True, check=True).stdout
        found += [f"{what}: {msgid}" for msgid in re.findall(r'^msgid "(.+)"$', listed, re.M)]
    return found


def missing_messages(root: Path, languages: list[str]) -> list[str]:
    """Run makemessages on a copy of the tree and report what it adds untranslated."""
    with tempfile.TemporaryDirectory(prefix="checkmessages-") as scratch:
        copy = Path(scratch)
        for name in COPIED:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns(
                    "__pycache__", "*.mo"))
            elif source.exists():
                shutil.copy2(source, copy / name)
        command = [sys.executable, "manage.py", "makemessages", "--no-location",
                   *(f"--ignore={pattern}" for pattern in MAKEMESSAGES_IGNORES),
                   *(f"--locale={language}" for language in languages)]
        environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "panel.settings_test",
                       "PANEL_VAR_DIR": str(copy / "var")}
        made = subprocess.run(command, cwd=copy, capture_output=True, text=True,
                              env=environment)
        if made.returncode != 0:
            return [f"makemessages failed: {made.stderr.strip()[-2000:]}"]
        return [f"in the code, not in {language}'s catalogue: {line}"
                for language in languages
                for line in unfinished(copy / "locale" / language / "LC_MESSAGES" / "django.po")]
