"""Config files and `--set` values are bounded before anything reads them: a YAML anchor
bomb is refused in milliseconds, and error messages show long values truncated."""

from __future__ import annotations

import json
import time

import pytest

from keras_lmiqa import config as config_lib
from keras_lmiqa.errors import ConfigError


def _anchor_bomb(levels: int, key: str = "dataset_options") -> str:
    """YAML whose last anchor expands to 9**levels strings: 9 lines, some hundred bytes."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    body = "\n".join("  " + line for line in lines)
    return f"{key}:\n{body}\nepochs: *a{levels - 1}\n"


def _error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lmiqa train: error: "), lines
    return lines[0]


@pytest.mark.parametrize("levels", [6, 10])  # 531 441 and 3.5 billion values once expanded
def test_a_yaml_anchor_bomb_is_refused_at_once(levels, tmp_path, capsys):
    from keras_lmiqa.cli import main

    path = tmp_path / "bomb.yaml"
    path.write_text(_anchor_bomb(levels))
    assert path.stat().st_size < 1000
    for extra in ([], ["--print-config"]):
        assert main(["train", "--config", str(path), *extra]) == 2
        line = _error_line(capsys)
        assert f"expands to more than {config_lib.MAX_CONFIG_NODES} values" in line and len(line) < 300
    started = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than"):
        config_lib.load_file(str(path))
    assert time.monotonic() - started < 5  # a loaded 2-core machine; expanding the 10-level bomb takes hours


def test_a_set_value_is_bounded_like_a_file(capsys):
    from keras_lmiqa.cli import main

    bomb = "{a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1], " + ", ".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)) + "}"
    with pytest.raises(SystemExit) as stopped:  # argparse's own refusal of a flag value: exit 2
        main(["train", "--set", f"dataset_options={bomb}", "--print-config"])
    assert stopped.value.code == 2
    assert f"expands to more than {config_lib.MAX_CONFIG_NODES} values" in capsys.readouterr().err


def test_within_the_bound_a_long_value_is_shown_truncated(tmp_path, capsys):
    from keras_lmiqa.cli import main

    path = tmp_path / "long.yaml"
    path.write_text("epochs: [" + ", ".join(["123456789"] * 3000) + "]\nbackbone: " + "x" * 5000 + "\n")
    assert main(["train", "--config", str(path)]) == 2
    line = _error_line(capsys)
    assert "config key 'epochs' expects an integer, got [123456789, 123456789, 123456789, 123456789, ...]" in line
    assert len(line) < 300
    with pytest.raises(ConfigError, match="backbone 'xxx.*\\.\\.\\.xxx.*' is not one of") as caught:
        config_lib.from_dict({"backbone": "x" * 100_000})
    assert len(str(caught.value)) < 300


def test_self_reference_and_size_limits(tmp_path):
    with pytest.raises(ConfigError, match="refers to itself"):
        config_lib.parse_yaml("&a [1, *a]", "value")
    assert config_lib.parse_yaml("{a: &x [1, 2], b: *x}", "value") == {"a": [1, 2], "b": [1, 2]}
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"dataset_options": {"k": "x" * config_lib.MAX_CONFIG_BYTES}}))
    with pytest.raises(ConfigError, match=f"above the {config_lib.MAX_CONFIG_BYTES}-byte limit"):
        config_lib.load_file(str(big))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="cannot parse config file"):
        config_lib.load_file(str(deep))
