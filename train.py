#!/usr/bin/env python
"""Train LML-IQA: `python train.py --dataset kadid10k --data-root DIR` (see --help)."""

import sys

from keras_lmiqa.cli.train_cmd import main

if __name__ == "__main__":
    sys.exit(main())
