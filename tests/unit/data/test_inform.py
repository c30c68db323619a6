"""The inForm reader: component pages by shape, masks, normalisation, sample discovery, bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from dedl_experiments.data import synthetic
from dedl_experiments.data.errors import DataError
from dedl_experiments.data.inform import (
    COMPONENTS,
    Sample,
    find_samples,
    mask_path,
    normalise,
    patient_id,
    read_channel,
    read_components,
    read_mask,
)

SHAPE = (20, 30)
PANEL = "Panel 1"


def _write_pages(path: Path, pages: list[np.ndarray]) -> Path:
    with tifffile.TiffWriter(path) as tiff:
        for page in pages:
            tiff.write(page, photometric="rgb" if page.ndim == 3 else "minisblack", metadata=None)
    return path


def _components(values: range | list[float] = range(8)) -> list[np.ndarray]:
    return [np.full(SHAPE, value, dtype=np.float32) for value in values]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.write_inform_dataset(tmp_path_factory.mktemp("inform"), height=48, width=64, images_per_patient=1)


def test_reads_the_eight_components_of_a_synthetic_export(dataset: Path) -> None:
    image = next((dataset / PANEL).glob("*_component_data.tif"))
    components = read_components(image)
    assert components.shape == (8, 48, 64) and components.dtype == np.float32
    np.testing.assert_array_equal(components, tifffile.imread(image, key=range(8)))
    np.testing.assert_array_equal(read_channel(image, "dapi"), components[0])
    np.testing.assert_array_equal(read_channel(image, "CD4"), components[COMPONENTS.index("CD4")])
    np.testing.assert_array_equal(read_channel(image, 7), components[7])


def test_picks_component_pages_by_shape_skipping_thumbnails_and_other_pages(tmp_path: Path) -> None:
    thumbnail = np.zeros((3, 4, 3), dtype=np.uint8)
    small_plane = np.full((5, 6), 99, dtype=np.float32)
    pages = [thumbnail, *_components()[:3], small_plane, *_components()[3:], thumbnail]
    path = _write_pages(tmp_path / "s_component_data.tif", pages)
    components = read_components(path)
    assert components.shape == (8, *SHAPE)
    np.testing.assert_array_equal(components[:, 0, 0], np.arange(8))
    assert read_channel(path, "cxcr5")[0, 0] == COMPONENTS.index("CXCR5")


def test_wrong_number_of_component_pages_is_reported_with_the_file(tmp_path: Path) -> None:
    path = _write_pages(tmp_path / "seven.tif", [*_components(range(7)), np.zeros((3, 4, 3), np.uint8)])
    with pytest.raises(DataError, match=r"seven\.tif: expected 8 component pages of one size, found 7"):
        read_components(path)


def test_truncated_tiff_is_reported_with_the_file(tmp_path: Path) -> None:
    whole = _write_pages(tmp_path / "whole.tif", [*_components(), np.zeros((3, 4, 3), np.uint8)]).read_bytes()
    for cut in (len(whole) // 2, len(whole) - 10, 6):
        path = tmp_path / f"cut{cut}.tif"
        path.write_bytes(whole[:cut])
        with pytest.raises(DataError, match=rf"cut{cut}\.tif: .*(truncated|corrupt|not a readable TIFF)"):
            read_components(path)


def test_non_tiff_and_missing_files_are_reported_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes_component_data.tif"
    path.write_text("this is not a TIFF file")
    with pytest.raises(DataError, match=r"notes_component_data\.tif: not a readable TIFF"):
        read_components(path)
    with pytest.raises(DataError, match=r"absent\.tif: file does not exist"):
        read_mask(tmp_path / "absent.tif")


def test_non_finite_pixels_are_refused_and_counted_per_channel(tmp_path: Path) -> None:
    pages = _components()
    pages[2] = np.full(SHAPE, np.nan, dtype=np.float32)
    path = _write_pages(tmp_path / "nan.tif", pages)
    with pytest.raises(DataError, match=rf"nan\.tif: {SHAPE[0] * SHAPE[1]} of \d+ pixels of "
                                        "channel CD19 are NaN or infinite"):
        read_components(path)

    # A few NaN / inf are refused too: no value is invented for them.
    pages = _components(range(1, 9))
    pages[0][1, 1], pages[0][2, 2], pages[5][0, 0] = np.nan, np.inf, -np.inf
    spots = _write_pages(tmp_path / "spots.tif", pages)
    with pytest.raises(DataError, match=r"spots\.tif: 2 of \d+ pixels of channel DAPI are NaN"):
        read_components(spots)
    with pytest.raises(DataError, match=r"spots\.tif: 1 of \d+ pixels of channel CD4 are NaN"):
        read_channel(spots, "CD4")
    assert read_channel(spots, "CD19").shape == SHAPE  # an untouched channel still reads


def test_bad_channel_name_lists_valid_names(tmp_path: Path) -> None:
    path = _write_pages(tmp_path / "ok.tif", _components())
    with pytest.raises(DataError, match="unknown channel 'CD8'.*DAPI, CXCR3, CD19"):
        read_channel(path, "CD8")
    with pytest.raises(DataError, match="channel index 8 is out of range"):
        read_channel(path, 8)


def test_mask_accepts_0_255_and_0_1(tmp_path: Path) -> None:
    values = np.zeros(SHAPE, dtype=np.uint8)
    values[5:10, 5:10] = 255
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, values)
    mask = read_mask(path, expected_shape=SHAPE)
    assert mask.dtype == bool and mask.sum() == 25
    tifffile.imwrite(path, (values > 0).astype(np.uint8))
    np.testing.assert_array_equal(read_mask(path), mask)
    tifffile.imwrite(path, np.zeros(SHAPE, dtype=np.uint8))
    assert not read_mask(path).any()


def test_non_finite_mask_is_refused_and_counted(tmp_path: Path) -> None:
    mask = np.zeros(SHAPE, dtype=np.float32)
    mask[:2] = np.nan
    path = _write_pages(tmp_path / "nan_mask.tif", [mask])
    with pytest.raises(DataError, match=rf"nan_mask\.tif: 60 of {SHAPE[0] * SHAPE[1]} pixels are NaN"):
        read_mask(path)


def test_mask_with_other_values_names_file_and_values(tmp_path: Path) -> None:
    values = np.zeros(SHAPE, dtype=np.uint8)
    values[0, :3] = (1, 128, 255)
    path = tmp_path / "odd.tifMask.tif"
    tifffile.imwrite(path, values)
    with pytest.raises(DataError, match=r"odd\.tifMask\.tif: mask values must be 0/255 or 0/1.*\[1, 128, 255\]"):
        read_mask(path)


def test_mask_shape_mismatch_names_file_and_both_shapes(tmp_path: Path) -> None:
    path = tmp_path / "small.tif"
    tifffile.imwrite(path, np.zeros((10, 12), dtype=np.uint8))
    with pytest.raises(DataError, match=r"small\.tif: mask shape \(10, 12\) does not match image shape \(20, 30\)"):
        read_mask(path, expected_shape=SHAPE)


def test_normalise_methods() -> None:
    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 3.0, (64, 64)).astype(np.float32)
    image[0, 0] = 1000  # a hot pixel must not squash the rest under "percentile"
    scaled = normalise(image)
    assert scaled.dtype == np.float32 and scaled.min() == 0 and scaled.max() == 1
    assert np.median(scaled) > 0.1
    minmax = normalise(image, "minmax")
    assert minmax.min() == 0 and minmax.max() == 1 and np.median(minmax) < 0.01
    np.testing.assert_array_equal(normalise(image.astype(np.float64), "none"), image)
    assert not normalise(np.full((4, 4), 7.0)).any()
    stacked = normalise(np.stack([image, image * 100]))
    np.testing.assert_allclose(stacked[0], stacked[1], atol=1e-6)
    with pytest.raises(ValueError, match="unknown normalisation 'zscore'; valid: percentile, minmax, none"):
        normalise(image, "zscore")


def test_patient_id_from_sample_name() -> None:
    assert patient_id("121919_Myo089_[7559,39143]") == "Myo089"
    with pytest.raises(DataError, match="sample name 'Myo089-7559' does not look like"):
        patient_id("Myo089-7559")


def test_find_samples_pairs_images_and_masks(dataset: Path) -> None:
    samples, problems = find_samples(dataset)
    assert problems == []
    assert len(samples) == len(synthetic.PATIENTS)
    assert [s.name for s in samples] == sorted(s.name for s in samples)
    assert {s.patient for s in samples} == set(synthetic.PATIENTS)
    for sample in samples:
        assert isinstance(sample, Sample)
        assert sample.image.is_file() and sample.mask.is_file()
        assert sample.mask == mask_path(dataset, PANEL, sample.name)


def test_find_samples_reports_missing_masks_orphan_masks_and_bad_names(tmp_path: Path, dataset: Path) -> None:
    root = synthetic.write_inform_dataset(tmp_path / "d", height=24, width=32, images_per_patient=1)
    samples, _ = find_samples(root)
    samples[0].mask.unlink()
    orphan = mask_path(root, PANEL, "010120_Myo999_[1,2]")
    orphan.write_bytes(samples[1].mask.read_bytes())
    odd_image = root / PANEL / "oddname_component_data.tif"
    odd_image.write_bytes(samples[1].image.read_bytes())
    mask_path(root, PANEL, "oddname").write_bytes(samples[1].mask.read_bytes())

    found, problems = find_samples(root)
    assert [s.name for s in found] == [s.name for s in samples[1:]]
    assert len(problems) == 3
    assert any(samples[0].name in p and "no mask" in p for p in problems)
    assert any(str(orphan) in p and "no image" in p for p in problems)
    assert any(str(odd_image) in p and "does not look like" in p for p in problems)
    assert all("\n" not in p for p in problems)


def test_find_samples_root_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(f"dataset root {tmp_path / 'missing'} does not exist")):
        find_samples(tmp_path / "missing")
    (tmp_path / "Panel 1").mkdir()
    expected = f"{tmp_path}: no images found matching <panel>/*_component_data.tif"
    with pytest.raises(DataError, match=re.escape(expected)):
        find_samples(tmp_path)


def test_find_samples_root_that_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "export.tar"
    root.write_bytes(b"not a folder")
    with pytest.raises(DataError) as error:
        find_samples(root)
    assert str(error.value) == (f"dataset root {root} is a file, not a folder "
                                "(expected the export folder holding <panel>/ and Labels/)")


def test_tiny_mask_names_its_real_shape(tmp_path: Path) -> None:
    path = tmp_path / "dot.tifMask.tif"
    tifffile.imwrite(path, np.full((1, 1), 255, dtype=np.uint8))
    with pytest.raises(DataError) as error:
        read_mask(path)
    assert str(error.value) == f"{path}: mask of shape (1, 1) is too small: it must be at least 2x2 pixels"
    tifffile.imwrite(path, np.full((1, 4, 5), 255, dtype=np.uint8))  # a singleton axis is still dropped
    assert read_mask(path).shape == (4, 5)


def test_tiny_component_pages_are_refused(tmp_path: Path) -> None:
    path = _write_pages(tmp_path / "dot_component_data.tif",
                        [np.full((1, 1), value, dtype=np.float32) for value in range(8)])
    with pytest.raises(DataError) as error:
        read_components(path)
    assert str(error.value) == f"{path}: image of shape (1, 1) is too small: it must be at least 2x2 pixels"
