"""``fusedopt demo``: each subcommand runs at a tiny size and writes a real, non-empty picture."""

import pytest

from fusedopt import cli

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")


def run(*argv):
    return cli.main(["demo", *argv])


def picture(path, frames=1):
    assert path.stat().st_size > 10_000  # axes, contours and lines, not an empty canvas
    with Image.open(path) as im:
        assert im.size[0] >= 600 and im.size[1] >= 500
        assert getattr(im, "n_frames", 1) >= frames
        assert len(im.convert("RGB").getcolors(1 << 20) or range(1 << 20)) > 50  # drawn, not blank


@pytest.mark.parametrize("surface", ["beale", "saddle", "bowl_1d"])
def test_demo_paths_writes_a_still(tmp_path, surface, capsys):
    out = tmp_path / f"{surface}.png"
    assert run("paths", "--surface", surface, "--steps", "20", "--out", str(out)) == 0
    picture(out)
    printed = capsys.readouterr().out
    for label in ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam", "AdamW"):
        assert f"\n{label} " in printed


def test_demo_paths_writes_an_animation(tmp_path):
    out = tmp_path / "saddle.gif"
    assert run("paths", "--surface", "saddle", "--steps", "6", "--out", str(out)) == 0
    picture(out, frames=7)


def test_demo_regression(tmp_path, capsys):
    out = tmp_path / "fit.png"
    assert run("regression", "--samples", "40", "--epochs", "3", "--out", str(out)) == 0
    picture(out)
    printed = capsys.readouterr().out
    assert "batch GD (batch 40)" in printed and "SGD (batch 1)" in printed and "x slower" in printed


@pytest.mark.parametrize("dataset", ["moons", "digits"])
def test_demo_train(tmp_path, dataset, capsys):
    if dataset == "digits":
        pytest.importorskip("sklearn")
    out = tmp_path / "curves.png"
    assert run("train", "--dataset", dataset, "--samples", "120", "--epochs", "2", "--out", str(out)) == 0
    picture(out)
    printed = capsys.readouterr().out
    assert "init zeros" in printed and "optimizer Adam" in printed


@pytest.mark.parametrize("argv,words", [
    (["paths", "--out", "x.jpg"], "expected a file ending in"),
    (["regression", "--out", "/no/such/folder/fit.png"], "does not exist"),
])
def test_bad_outputs_exit_2_with_a_message(argv, words, capsys):
    assert run(*argv) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["paths", "--steps", "0"], ["paths", "--surface", "moon"],
                                  ["train", "--dataset", "mnist"], ["regression", "--lr", "-1"]])
def test_bad_options_exit_2(argv):
    with pytest.raises(SystemExit) as e:
        run(*argv)
    assert e.value.code == 2
