"""Pictures a person can read: image grids enlarged to a legible size, scatter plots that say
how many points they cannot show, and the demo's labelled panels."""
import json

import numpy as np
import pytest
import torch

from scoresde.plotting import image_grid, outside_count, save_image_grid, scatter_png

Image = pytest.importorskip("PIL.Image")


@pytest.mark.parametrize("shape,nrow,side", [
    ((64, 1, 8, 8), None, 328),      # the quickstart's grid: 82 px, 4x
    ((4, 3, 32, 32), None, 280),     # 70 px, 4x
    ((64, 1, 28, 28), None, 484),    # 242 px, 2x
    ((3, 1, 8, 8), 3, 264),          # 32 x 12 px: the short side decides, 22x
])
def test_small_grids_are_enlarged_with_nearest_neighbour(tmp_path, shape, nrow, side):
    images = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    small = image_grid(images, nrow=nrow).numpy()
    path = save_image_grid(images, str(tmp_path / "grid.png"), nrow=nrow)
    big = Image.open(path)
    scale = side // min(small.shape[:2])
    assert min(big.size) == side >= 256 and (scale - 1) * min(small.shape[:2]) < 256
    assert big.size == (small.shape[1] * scale, small.shape[0] * scale)
    pixels = torch.from_numpy(np.array(big)).reshape(big.size[1], big.size[0], -1)
    expected = torch.from_numpy(small).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    assert torch.equal(pixels, expected)  # every source pixel is a scale x scale block, padding too


def test_large_grids_keep_their_size(tmp_path):
    images = torch.zeros(4, 1, 300, 300)
    path = save_image_grid(images, str(tmp_path / "grid.png"), min_size=256)
    assert Image.open(path).size == (606, 606)


def test_outside_count():
    pts = torch.tensor([[0.0, 0.0], [3.0, -3.0], [3.01, 0.0], [0.0, -250.0], [float("nan"), 0.0],
                        [float("inf"), 1.0], [-2.9, 2.9]])
    assert outside_count(pts, (-3.0, 3.0)) == 4
    assert outside_count(pts[:2], (-3.0, 3.0)) == 0


def test_scatter_plot_states_the_points_it_cannot_show(tmp_path):
    gen = torch.Generator().manual_seed(0)
    ring = torch.randn(500, 2, generator=gen) * 0.5
    far = torch.randn(20, 2, generator=gen) * 100 + 200  # all well outside [-3, 3]^2
    panels = [("inside", ring), ("with outliers\nsecond line", torch.cat([ring, far]))]
    path = scatter_png(panels, str(tmp_path / "s.png"), size=200)
    img = Image.open(path)
    assert json.loads(img.text["outside"]) == {"inside": 0, "with outliers\nsecond line": 20}
    assert img.size[0] == 400 and img.size[1] > 200 + 3 * 13  # three heading lines above the panel


def test_demo_writes_labelled_panels(tmp_path, capsys):
    from scoresde import demo

    out = tmp_path / "ring.png"
    assert demo.main(["--out", str(out), "-n", "200", "--steps", "10"]) == 0
    titles = list(json.loads(Image.open(out).text["outside"]))
    assert [t.split("\n")[0] for t in titles] == [
        "data (the 8-mode ring)", "VP, PC (Euler-Maruyama + Langevin)",
        "VE, PC (reverse diffusion + Langevin)", "sub-VP, probability-flow ODE (RK45)"]
    assert all("  " not in t for t in titles)
    assert "modes hit" in titles[1]
