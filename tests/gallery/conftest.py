"""Session fixture: the strangers' gallery, trained once (see gallery_training.py)."""

from __future__ import annotations

import pytest

from tests.gallery.gallery_training import GalleryCase, make_gallery


@pytest.fixture(scope="session")
def gallery(tmp_path_factory) -> dict[str, GalleryCase]:
    return make_gallery(tmp_path_factory.mktemp("gallery"))
