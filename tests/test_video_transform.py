"""Per-frame geometry: upright rotation, CLIP's stretch and Synchformer's short-side resize + centre crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vssflow_core.video.transform import normalize_size, resize_frame, short_side_size, upright


def picture(h: int, w: int) -> torch.Tensor:
    """A smooth test picture (bicubic filters agree on smooth content; noise exposes only rounding order)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([127 + 120 * np.sin(xx / 7.0), 127 + 120 * np.cos(yy / 5.0), xx * 255 / w], -1)
    return torch.from_numpy(img.round().astype(np.uint8))


def test_upright_turns_counter_clockwise() -> None:
    f = torch.zeros(2, 3, 3, dtype=torch.uint8)
    f[0, 0] = 255  # top-left
    r = upright(f, 90)
    assert tuple(r.shape) == (3, 2, 3)
    assert r[2, 0, 0] == 255  # a counter-clockwise quarter turn brings top-left to bottom-left
    assert upright(f, -90)[0, 1, 0] == 255  # clockwise: top-left to top-right
    assert upright(f, 270).equal(upright(f, -90))
    assert upright(f, 180)[1, 2, 0] == 255
    assert upright(f, 0) is f


@pytest.mark.parametrize(
    ("h", "w", "expected"),
    [
        (121, 161, (224, 298)),
        (300, 200, (336, 224)),
        (224, 224, (224, 224)),
        (1080, 1920, (224, 398)),
        (48, 64, (224, 298)),
    ],
)
def test_short_side_size_truncates_like_torchvision(h: int, w: int, expected: tuple[int, int]) -> None:
    assert short_side_size(h, w, 224) == expected


def test_stretch_ignores_aspect_ratio() -> None:
    out = resize_frame(picture(121, 161), (224, 224), "stretch")
    assert out.dtype == torch.uint8 and tuple(out.shape) == (224, 224, 3)
    # The blue ramp (x / width) spans the whole output: nothing was cropped.
    assert out[:, 0, 2].float().mean() < 10 and out[:, -1, 2].float().mean() > 240


def test_center_crop_keeps_the_middle() -> None:
    f = torch.zeros(100, 200, 3, dtype=torch.uint8)
    f[:, :40] = torch.tensor([255, 0, 0], dtype=torch.uint8)  # left fifth: cropped away
    f[:, 80:120] = torch.tensor([0, 255, 0], dtype=torch.uint8)  # the centre: kept, centred
    out = resize_frame(f, 224, "short_side_center_crop")
    assert tuple(out.shape) == (224, 224, 3)
    assert int(out[..., 0].max()) == 0  # no red survives
    green_cols = torch.nonzero(out[112, :, 1] > 128).flatten()
    assert abs(float(green_cols.float().mean()) - 111.5) < 1.0
    assert green_cols.numel() == pytest.approx(40 * 224 / 100, abs=2)


def test_non_square_crop_covers_the_target() -> None:
    out = resize_frame(picture(121, 161), (40, 20), "short_side_center_crop")
    assert tuple(out.shape) == (20, 40, 3)


def test_sizes() -> None:
    assert normalize_size(224) == (224, 224)
    assert normalize_size((32, 24)) == (32, 24)
    assert normalize_size(None) is None
    with pytest.raises(ValueError):
        normalize_size((0, 10))
    with pytest.raises(ValueError, match="resize mode"):
        resize_frame(picture(8, 8), (4, 4), "letterbox")


@pytest.mark.parametrize(("h", "w"), [(48, 64), (121, 161), (360, 640), (1080, 1920), (300, 200)])
def test_bicubic_matches_pil(h: int, w: int) -> None:
    """CLIP's preprocessing resizes with PIL; torch's uint8 antialiased bicubic is the same resampler."""
    Image = pytest.importorskip("PIL.Image")
    f = picture(h, w)
    ours = resize_frame(f, (224, 224), "stretch").numpy().astype(int)
    pil = np.asarray(Image.fromarray(f.numpy()).resize((224, 224), Image.BICUBIC)).astype(int)
    assert np.abs(ours - pil).max() <= 1
