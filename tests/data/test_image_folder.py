"""Image folders: class subfolders, sorted order, resizing, modes, and clear errors."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tinydiff.data import load_image_folder


def _solid(path, colour, size=(20, 20), mode="RGB"):
    Image.new(mode, size, colour).save(path)


@pytest.fixture
def classes(tmp_path):
    (tmp_path / "dog").mkdir()
    (tmp_path / "cat").mkdir()
    (tmp_path / "empty").mkdir()
    _solid(tmp_path / "dog" / "b.png", (0, 0, 255))
    _solid(tmp_path / "dog" / "a.png", (0, 255, 0), size=(40, 24))
    _solid(tmp_path / "cat" / "z.bmp", (255, 0, 0))
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    _solid(tmp_path / "cat" / ".hidden.png", (9, 9, 9))
    return tmp_path


def test_class_subfolders_in_sorted_order(classes):
    data = load_image_folder(classes, size=8)
    assert data.classes == ["cat", "dog"]
    assert [p.split("/")[-1] for p in data.paths] == ["z.bmp", "a.png", "b.png"]
    np.testing.assert_array_equal(data.labels, [0, 1, 1])
    assert data.labels.dtype == np.int64
    assert data.images.shape == (3, 3, 8, 8) and data.images.dtype == np.float32
    expected = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float32)
    np.testing.assert_array_equal(data.images[:, :, 4, 4], expected)  # red, green, blue


def test_grayscale_and_loose_files(tmp_path):
    _solid(tmp_path / "2.png", 255, mode="L")
    _solid(tmp_path / "1.jpg", (255, 255, 255))
    _solid(tmp_path / "3.png", 0, mode="L")
    data = load_image_folder(tmp_path, size=5, mode="L")
    assert data.labels is None and data.classes == []
    assert data.images.shape == (3, 1, 5, 5)
    np.testing.assert_allclose(data.images[:, 0, 2, 2], [1, 1, -1], atol=0.02)


def test_centre_crop_then_resize(tmp_path):
    # 30 wide, 10 high: red side bands, a blue 10x10 square in the middle. The crop keeps
    # exactly the square, so no red survives the resize.
    img = Image.new("RGB", (30, 10), (255, 0, 0))
    img.paste((0, 0, 255), (10, 0, 20, 10))
    img.save(tmp_path / "wide.png")
    data = load_image_folder(tmp_path, size=4)
    np.testing.assert_allclose(data.images[0, 0], -1.0, atol=1e-6)
    np.testing.assert_allclose(data.images[0, 2], 1.0, atol=1e-6)


def test_transparency_becomes_white(tmp_path):
    Image.new("RGBA", (6, 6), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    data = load_image_folder(tmp_path, size=6)
    np.testing.assert_array_equal(data.images, 1.0)


def test_clear_errors(tmp_path, classes):
    with pytest.raises(FileNotFoundError, match="missing-dir"):
        load_image_folder(tmp_path / "missing-dir", size=8)
    (tmp_path / "void").mkdir()
    with pytest.raises(ValueError, match="void.*no images found"):
        load_image_folder(tmp_path / "void", size=8)
    _solid(classes / "loose.png", (1, 2, 3))
    with pytest.raises(ValueError, match="loose.png"):
        load_image_folder(classes, size=8)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(ValueError, match="broken.png.*not a readable image"):
        load_image_folder(tmp_path / "bad", size=8)
    with pytest.raises(ValueError, match="mode"):
        load_image_folder(tmp_path / "bad", size=8, mode="CMYK")
    with pytest.raises(ValueError, match="size"):
        load_image_folder(tmp_path / "bad", size=0)


def _png_claiming(path, width, height):
    """A PNG whose header claims width x height pixels, with a few bytes of image data: what a
    decompression bomb looks like to Pillow's size check, without the memory to build one."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [20000, 10000], ids=["bomb error", "bomb warning"])
def test_decompression_bomb_names_the_file(tmp_path, side):
    # 20000^2 is over twice Pillow's MAX_IMAGE_PIXELS (an error in Pillow), 10000^2 between
    # once and twice (only a warning in Pillow): both are refused before decoding
    _solid(tmp_path / "fine.png", (1, 2, 3))
    _png_claiming(tmp_path / "huge.png", side, side)
    with pytest.raises(ValueError, match=r"huge\.png.*decompression bomb.*MAX_IMAGE_PIXELS"):
        load_image_folder(tmp_path, size=8)


def test_truncated_image_names_the_file(tmp_path):
    _solid(tmp_path / "whole.png", (1, 2, 3), size=(64, 64))
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.png.*not a readable image"):
        load_image_folder(tmp_path, size=8)
