"""Re-encrypt every stored secret with the first key of PANEL_ENCRYPTION_KEYS.

Why: after a new key is put first, old rows still decrypt with the old key; this command
rewrites them so the old key can then be removed from the environment.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from clusters.core import crypto
from clusters.fields import EncryptedTextField


class Command(BaseCommand):
    help = "Re-encrypt all secrets at rest with the primary key of PANEL_ENCRYPTION_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        rows = 0
        with transaction.atomic():
            for model in apps.get_models():
                columns = [field.column for field in model._meta.get_fields()
                           if isinstance(field, EncryptedTextField) and field.column]
                pk = model._meta.pk  # every model has one; its column is typed optional
                if columns and pk is not None and pk.column:
                    rows += _rotate_table(model._meta.db_table, pk.column, columns)
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted secrets in {rows} row(s)."))


def _rotate_table(table: str, pk_column: str, columns: list[str]) -> int:
    """Rotate the stored tokens as they are in the columns, without decrypting to Python."""
    quote = connection.ops.quote_name
    selected = ", ".join(quote(column) for column in columns)
    changed = 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote(pk_column)}, {selected} FROM {quote(table)}")  # noqa: S608
        for pk, *tokens in cursor.fetchall():
            updates = {column: crypto.rotate(token)
                       for column, token in zip(columns, tokens, strict=True) if token}
            if not updates:
                continue
            assignments = ", ".join(f"{quote(column)} = %s" for column in updates)
            cursor.execute(
                f"UPDATE {quote(table)} SET {assignments} WHERE {quote(pk_column)} = %s",  # noqa: S608
                [*updates.values(), pk],
            )
            changed += 1
    return changed
