"""Model fields whose values are encrypted in the database column."""

from __future__ import annotations

from typing import Any

from django.db import models

from clusters.core import crypto


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token; Python code sees plaintext, the column never does.

    Blank values are stored as an empty string so "not set" stays queryable.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if not value:
            return value
        return crypto.decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if not value:
            return value
        return crypto.encrypt(str(value))

    def to_python(self, value: Any) -> Any:
        return value
