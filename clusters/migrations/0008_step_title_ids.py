"""Steps store their title as a gettext message id and arguments (clusters.core.titles).

Rows written before carry only the English text; this gives each its id: the four titles with
values in them are parsed back once, here, by the patterns the display list used to apply on
every page view; every other title is its own id (gettext returns an unknown one unchanged, so
a title the catalogue never had still shows as stored).
"""

from __future__ import annotations

import re

from django.db import migrations, models

_PATTERNS = (
    (re.compile(r"^Install K3s server (?P<n>\d+) \((?P<ip>[^)]*)\)$"),
     "Install K3s server %(n)s (%(ip)s)"),
    (re.compile(r"^Install K3s agent \((?P<ip>[^)]*)\)$"), "Install K3s agent (%(ip)s)"),
    (re.compile(r"^Upgrade K3s server (?P<n>\d+) \((?P<ip>[^)]*)\) to (?P<version>\S+)$"),
     "Upgrade K3s server %(n)s (%(ip)s) to %(version)s"),
    (re.compile(r"^Upgrade K3s agent \((?P<ip>[^)]*)\) to (?P<version>\S+)$"),
     "Upgrade K3s agent (%(ip)s) to %(version)s"),
)


def title_id(title: str) -> tuple[str, dict[str, str]]:
    for pattern, msgid in _PATTERNS:
        match = pattern.match(title)
        if match:
            return msgid, match.groupdict()
    return title, {}


def give_ids(apps, schema_editor) -> None:
    Step = apps.get_model("clusters", "Step")
    changed = []
    for step in Step.objects.filter(title_id="").only("pk", "title").iterator():
        step.title_id, step.title_args = title_id(step.title)
        changed.append(step)
        if len(changed) >= 500:
            Step.objects.bulk_update(changed, ["title_id", "title_args"])
            changed = []
    Step.objects.bulk_update(changed, ["title_id", "title_args"])


class Migration(migrations.Migration):

    dependencies = [
        ("clusters", "0007_rds_today"),
    ]

    operations = [
        migrations.AddField(
            model_name="step",
            name="title_id",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="step",
            name="title_args",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(give_ids, migrations.RunPython.noop),
    ]
