"""config.urls lists metering's API patterns first because they carry most of
the traffic; that is only safe while no path of one app's API can be matched
by another app's patterns (then the order of the includes decides nothing)."""

import re

from django.urls import Resolver404
from django.urls.resolvers import URLResolver

from config import urls

_SAMPLES = {"uuid": "0b9a1f2e-1111-2222-3333-444455556666", "int": "7", "path": "a/b", "slug": "s-1", "str": "s-1"}


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


def _sample_path(route: str) -> str:
    return re.sub(r"<(?:(\w+):)?\w+>", lambda match: _SAMPLES[match.group(1) or "str"], route)


def _app_includes():
    return [include for include in urls.api_v1 if isinstance(include, URLResolver)]


def test_no_path_of_one_app_is_routed_by_another():
    clashes, checked = [], 0
    includes = _app_includes()
    for include in includes:
        for route in _routes(include.url_patterns):
            if route.startswith("^"):
                continue  # a regex route (none today)
            path, checked = _sample_path(route), checked + 1
            for other in includes:
                if other is include:
                    continue
                try:
                    other.resolve(path)
                except Resolver404:
                    continue
                clashes.append((path, include.urlconf_module.__name__, other.urlconf_module.__name__))
    assert clashes == []
    assert checked > 60  # every app's routes were tried


def test_the_hot_paths_are_tried_first():
    assert _app_includes()[0].urlconf_module.__name__ == "metering.api.urls"
