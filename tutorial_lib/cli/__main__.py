"""``python -m tutorial_lib.cli`` is ``diffrec-tutorial`` (also under ``torchrun -m``)."""
from . import main

if __name__ == "__main__":
    raise SystemExit(main())
