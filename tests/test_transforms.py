import pytest
import torch
import torch.nn.functional as F

from facecnn.data.augment_presets import AUGMENT_CHOICES
from facecnn.data.transforms import Augment, build_augmentation, to_float
from facecnn.errors import FacecnnError

RANDOM_PRESETS = [name for name in AUGMENT_CHOICES.names() if name != "none"]


def _batch(n: int = 8, c: int = 3, size: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=g)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", AUGMENT_CHOICES.names())
@pytest.mark.parametrize("channels", [1, 3])
def test_output_is_float_unit_range_same_shape(name: str, channels: int) -> None:
    batch = _batch(c=channels)
    out = build_augmentation(name)(batch, _gen())
    assert out.dtype == torch.float32
    assert out.shape == batch.shape
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("name", RANDOM_PRESETS)
def test_same_seed_same_output_different_seed_different_output(name: str) -> None:
    aug, batch = build_augmentation(name), _batch()
    assert torch.equal(aug(batch, _gen(1)), aug(batch, _gen(1)))
    assert not torch.equal(aug(batch, _gen(1)), aug(batch, _gen(2)))


def test_none_is_exactly_divide_by_255() -> None:
    batch = _batch()
    assert torch.equal(build_augmentation("none")(batch, _gen()), batch / 255)
    assert torch.equal(to_float(batch), batch / 255)


def test_hflip_is_per_sample_and_exact() -> None:
    image = torch.arange(3 * 16 * 16, dtype=torch.int64).remainder(251).to(torch.uint8)
    image = image.view(3, 16, 16)  # no left-right symmetry
    batch = image.expand(64, -1, -1, -1).contiguous()
    out = Augment(hflip_p=0.5)(batch, _gen())
    original, flipped = to_float(image), to_float(image).flip(-1)
    is_flipped = [torch.equal(o, flipped) for o in out]
    assert all(f or torch.equal(o, original) for o, f in zip(out, is_flipped))
    assert 0 < sum(is_flipped) < 64


def test_quarter_turns_flips_transpose_keep_pixels() -> None:
    batch = _batch(n=32)
    aug = Augment(rot90_p=0.2, hflip_p=0.5, vflip_p=0.5, transpose_p=0.25)
    out = aug(batch, _gen())
    before = to_float(batch).flatten(1).sort(dim=1).values
    assert torch.equal(out.flatten(1).sort(dim=1).values, before)
    assert not torch.equal(out, to_float(batch))


def test_rot90_probability_is_per_turn() -> None:
    with pytest.raises(ValueError):
        Augment(rot90_p=0.5)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(FacecnnError, match="seed_b_faces"):
        build_augmentation("mixup")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", RANDOM_PRESETS)
def test_cpu_generator_drives_cuda_batch_like_cpu(name: str) -> None:
    aug, batch = build_augmentation(name), _batch()
    cpu = aug(batch, _gen())
    cuda = aug(batch.cuda(), _gen())
    assert cuda.is_cuda
    torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-4, rtol=0)


def test_fast_affine_grid_equals_torch() -> None:
    from facecnn.data.transforms import _affine_grid

    theta = torch.randn(8, 2, 3, generator=torch.Generator().manual_seed(0))
    for height, width in ((32, 32), (17, 29)):
        expected = F.affine_grid(theta, [8, 3, height, width], align_corners=False)
        assert torch.allclose(_affine_grid(theta, height, width), expected, atol=1e-5)
