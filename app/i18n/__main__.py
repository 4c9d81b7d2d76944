"""``python -m app.i18n extract|update|compile|check``: see app/i18n/catalogues.py."""

import sys

from app.i18n.catalogues import main

sys.exit(main())
