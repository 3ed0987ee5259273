"""``python -m strongroom.data.synthetic OUT [--seed 7]``: write a set and its questions."""

from strongroom.data.synthetic.questions import main

raise SystemExit(main())
