"""Extension singletons, initialised by create_app()."""

from __future__ import annotations

from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.base import SQLA
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from app.models.base import PublicModel

db = SQLA(model_class=PublicModel)
appbuilder = AppBuilder(update_perms=False)
babel = Babel()
csrf = CSRFProtect()
