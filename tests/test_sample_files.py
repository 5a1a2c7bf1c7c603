"""Sample ids as file names: one encoding for every per-sample file of a run directory."""

from urllib.parse import unquote

import torch

from cfbench.results import MAX_STEM_BYTES, file_stem, load_pngs, save_pngs

TRICKY = [
    "00042",
    "n02130308/ILSVRC2012_val_00000001",
    "a%2Fb",
    "Herring Gull 03",
    "-leading-dash",
    ".hidden",
    "..",
    "ünïcödé/名前",
    "tilde~id",
    "a\\b",
    "x" * 300,
    "x" * 299 + "y",
]


def test_stems_are_flat_distinct_and_decode_to_the_id():
    stems = [file_stem(s) for s in TRICKY]
    assert file_stem("00042") == "00042"
    assert len(set(stems)) == len(TRICKY)
    for sid, stem in zip(TRICKY, stems):
        assert "/" not in stem and "\\" not in stem and stem[0] not in ".-"
        assert len(stem.encode()) <= MAX_STEM_BYTES
        if len(sid) < 100:
            assert unquote(stem) == sid


def test_pngs_round_trip_under_tricky_ids(tmp_path):
    images = torch.rand(len(TRICKY), 3, 4, 4)
    save_pngs(tmp_path, TRICKY, images)
    assert sorted(p.is_file() for p in tmp_path.iterdir()) == [True] * len(TRICKY)  # no sub-folders
    torch.testing.assert_close(load_pngs(tmp_path, TRICKY), torch.round(images * 255) / 255)


def test_region_masks_are_found_by_stem_or_by_the_ids_own_path(tmp_path):
    from cfbench.user_regions import load_user_regions

    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, :4], mask[1, :, 4:] = 1, 1
    save_pngs(tmp_path, ["n01/a"], mask[:1])  # n01%2Fa.png
    save_pngs(tmp_path / "n02", ["b"], mask[1:])  # n02/b.png
    torch.testing.assert_close(load_user_regions(tmp_path, ["n01/a", "n02/b"], (8, 8)), mask)
