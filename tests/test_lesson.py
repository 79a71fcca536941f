"""LessonParser: every lesson's --out and --fast, the notebook's environment variables standing
in for them, and a notebook kernel's own arguments ignored."""

import sys

import pytest

from tinydiff.lesson import LessonParser


def parse(monkeypatch, argv, **env):
    for name in ("TINYDIFF_LESSON_OUT", "TINYDIFF_LESSON_FAST", "TINYDIFF_LESSON_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["lesson.py", *argv])
    parser = LessonParser("07_example", "Lesson 07: an example", fast_help="smaller")
    parser.add_argument("--num", type=int, default=3)
    return parser.parse()


def test_flags_make_the_folder_and_say_where_it_is(monkeypatch, tmp_path, capsys):
    args = parse(monkeypatch, ["--out", str(tmp_path / "figs"), "--fast", "--num", "5"])
    assert args.out == tmp_path / "figs" and args.out.is_dir() and args.fast and args.num == 5
    assert str(tmp_path / "figs") in capsys.readouterr().out


def test_the_environment_stands_in_for_the_flags_in_a_notebook(monkeypatch, tmp_path):
    args = parse(monkeypatch, ["-f", "kernel.json"], TINYDIFF_LESSON_OUT=str(tmp_path), TINYDIFF_LESSON_FAST="1")
    assert args.out == tmp_path / "07_example" and args.fast and args.num == 3


def test_by_default_figures_go_under_outputs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    args = parse(monkeypatch, [])
    assert (tmp_path / args.out).is_dir() and args.out.parts == ("outputs", "07_example") and not args.fast


def test_a_missing_name_is_named():
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        LessonParser("", "Lesson", fast_help="smaller")


@pytest.mark.parametrize("argv, env", [(["--backend", "reference"], {}), ([], {"TINYDIFF_LESSON_BACKEND": "reference"})])
def test_backend_reference_switches_every_layer_to_the_numpy_kernels(monkeypatch, tmp_path, capsys, argv, env):
    from tinydiff import kernels

    try:
        args = parse(monkeypatch, ["--out", str(tmp_path), *argv], **env)
        assert args.backend == "reference" and kernels.current_backend() == "reference"
        assert "reference kernels" in capsys.readouterr().out
    finally:
        kernels.use("fast")
    assert parse(monkeypatch, ["--out", str(tmp_path)]).backend == "fast" and kernels.current_backend() == "fast"


def test_an_unknown_backend_is_a_usage_error(monkeypatch, tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse(monkeypatch, ["--out", str(tmp_path)], TINYDIFF_LESSON_BACKEND="slow")
    assert "--backend: expected one of ('fast', 'reference')" in capsys.readouterr().err
