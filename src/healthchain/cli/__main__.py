"""``python -m healthchain.cli``: the same as the ``healthchain`` console script."""

from __future__ import annotations

from . import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
