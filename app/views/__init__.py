"""Admin panel: FAB views, each declaring its audience for the role policy in app/security.py."""

from __future__ import annotations

from flask_appbuilder import AppBuilder

from app import security


def _check_scoped(view) -> None:
    """Every model view must load action rows through its scoped query (app.views.base.ModelView)."""
    from flask_appbuilder.baseviews import BaseCRUDView

    from app.views.base import ModelView

    if issubclass(view, BaseCRUDView) and not issubclass(view, ModelView):
        raise TypeError(f"{view.__name__} must inherit app.views.base.ModelView (scoped actions)")


def register_views(appbuilder: AppBuilder) -> None:
    for module in _view_modules():
        for view, name, category, audience, kwargs in getattr(module, "VIEWS", ()):
            _check_scoped(view)
            appbuilder.add_view(view, name, category=category, **kwargs)
            permission_name = view.class_permission_name or view.__name__
            audience.add(permission_name)
            security.MENU_VIEWS[name] = permission_name
            security.MENU_LANDING[permission_name] = _landing_permission(view)
            security.MENU_CATEGORIES.setdefault(category, set()).add(permission_name)
        for view, audience in getattr(module, "NO_MENU", ()):
            _check_scoped(view)
            appbuilder.add_view_no_menu(view)
            audience.add(view.class_permission_name or view.__name__)
        for api, audience in getattr(module, "APIS", ()):
            appbuilder.add_api(api)
            audience.add(api.class_permission_name or api.__name__)
        # Menu links to pages outside FAB's views, shown to the roles that may use `permission` there.
        for name, href, category, permission, landing, icon in getattr(module, "LINKS", ()):
            appbuilder.add_link(name, href=href, category=category, icon=icon)
            security.MENU_VIEWS[name] = permission
            security.MENU_LANDING.setdefault(permission, landing)
            security.MENU_CATEGORIES.setdefault(category, set()).add(permission)


def _landing_permission(view) -> str:
    """The permission the page a menu entry opens needs: "can_list" for a model view, else its default method's."""
    default = getattr(view, "default_view", "list")
    names = getattr(view, "method_permission_name", None) or {}
    method = getattr(view, default, None)
    return "can_" + (getattr(method, "_permission_name", None) or names.get(default, default))


def _view_modules():
    """Every module of this package (and of the feature packages) that declares VIEWS/NO_MENU/APIS/LINKS."""
    import importlib
    import pkgutil

    import app.views as package

    names = sorted(f"app.views.{m.name}" for m in pkgutil.iter_modules(package.__path__))
    for name in names:
        module = importlib.import_module(name)
        if any(hasattr(module, attr) for attr in ("VIEWS", "NO_MENU", "APIS", "LINKS")):
            yield module


__all__ = ["register_views", "security"]
