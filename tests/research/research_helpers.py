"""Helpers of the research tests: the tiny training settings and a counting train()."""

from toy_data import TOY_TRAIN_SETTINGS

# One short epoch: these tests check the workflow, not what the model learns.
TINY_SETTINGS = {**TOY_TRAIN_SETTINGS, "epochs": 1, "steps_per_epoch": 2}


def tiny_config(data_root: str, **changes):
    from keras_lmiqa.config import from_dict

    return from_dict({**TINY_SETTINGS, "data_root": data_root, **changes})


class CountingTrain:
    """`training.train`, recording the split seed of every run it starts."""

    def __init__(self):
        self.seeds: list[int] = []

    def __call__(self, config):
        from keras_lmiqa.training import train

        self.seeds.append(config.split_seed)
        return train(config)
