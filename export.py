#!/usr/bin/env python
"""Export a trained model for TF Serving: `python export.py --model RUN/model.keras --export-dir DIR` (see --help)."""

import sys

from keras_lmiqa.cli.export_cmd import main

if __name__ == "__main__":
    sys.exit(main())
