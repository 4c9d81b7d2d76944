"""Shared pieces of the admin views."""

from __future__ import annotations

from flask_appbuilder.models.sqla.interface import SQLAInterface


class Interface(SQLAInterface):
    """FAB's model interface, with one fix: a NOT NULL boolean is still optional in a form.

    FAB requires input for every NOT NULL column; an unticked checkbox sends no
    input, so "inactive" or "not virtual" could never be saved.
    """

    def is_nullable(self, col_name: str) -> bool:
        if self.is_boolean(col_name):
            return True
        return super().is_nullable(col_name)
