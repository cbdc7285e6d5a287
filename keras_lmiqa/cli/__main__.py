"""`python -m keras_lmiqa.cli ...` runs the `lmiqa` command."""

import sys

from keras_lmiqa.cli import main

sys.exit(main())
