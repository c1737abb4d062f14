"""The shared readers of sgnet.formats: the YouTube-VIS annotation reader both the loader and the
evaluator build on, and the segmentation checks every reader uses."""
import pytest

from data_fixtures import write_tiny_ytvis
from sgnet.errors import InvalidInput, MissingInput
from sgnet.formats.segmentation import find_segmentation_problem
from sgnet.formats.ytvis import Category, Video, parse_ytvis_annotations, read_ytvis_annotations


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_ytvis(str(tmp_path_factory.mktemp("tiny")))


def _annotation(content, track_id):
    return next(a for a in content["annotations"] if a["id"] == track_id)


def test_reader_returns_typed_videos_categories_and_tracks(tiny):
    content = tiny.copy_content()
    del content["videos"][2]["length"]  # optional: the number of file_names
    del _annotation(content, 201)["bboxes"], _annotation(content, 201)["areas"]
    _annotation(content, 103)["iscrowd"] = True
    checked = parse_ytvis_annotations(content, "tiny.json")
    assert checked.source == "tiny.json"
    assert list(checked.videos) == [1, 2, 3]
    assert checked.videos[3] == Video(
        id=3, height=32, width=40, file_names=tuple(f"clip_c/{5 * t:05d}.jpg" for t in range(5))
    )
    assert checked.videos[3].length == 5
    assert checked.categories == [Category(3, "cat"), Category(7, "dog"), Category(11, "fish")]
    tracks = {track.id: track for track in checked.tracks}
    assert [t.id for t in checked.tracks] == [101, 102, 103, 201]
    assert (tracks[103].iscrowd, tracks[101].iscrowd) == (1, 0)
    assert tracks[102].segmentations[0] is None and tracks[102].bboxes[0] is None
    assert tracks[102].bboxes[1] == _annotation(tiny.content, 102)["bboxes"][1]
    assert tracks[102].areas == (None, float(tiny.masks[1, 102, 1].sum()),
                                 float(tiny.masks[1, 102, 2].sum()), None)  # fmt: skip
    assert tracks[201].bboxes is None and tracks[201].areas is None
    assert tracks[201].segmentations == tuple(_annotation(tiny.content, 201)["segmentations"])


def test_reader_reads_the_file_and_names_a_missing_one(tiny, tmp_path):
    assert len(read_ytvis_annotations(tiny.json_file).tracks) == 4
    with pytest.raises(MissingInput, match=rf"^{tmp_path / 'absent.json'}: no such file$"):
        read_ytvis_annotations(str(tmp_path / "absent.json"))


def _areas_as_strings(content):
    _annotation(content, 101)["areas"] = [str(a) for a in _annotation(content, 101)["areas"]]


def _iscrowd_yes(content):
    _annotation(content, 102)["iscrowd"] = "yes"


def _polygon_of_two_points(content):
    _annotation(content, 201)["segmentations"][1] = [[10, 10, 30, 26]]


def _polygon_of_strings(content):
    _annotation(content, 201)["segmentations"][1] = [["10", "10", "30", "10", "30", "26"]]


def _empty_polygons(content):
    _annotation(content, 201)["segmentations"][1] = []


def _bbox_of_three_numbers(content):
    _annotation(content, 101)["bboxes"][0] = [4.0, 6.0, 16.0]


def _areas_too_short(content):
    _annotation(content, 102)["areas"].pop()


def _duplicate_annotation_id(content):
    _annotation(content, 201)["id"] = 101


def _category_without_name(content):
    del content["categories"][1]["name"]


def _duplicate_category_id(content):
    content["categories"][2]["id"] = 3


def _video_id_not_an_integer(content):
    content["videos"][0]["id"] = "1"


def _annotations_not_a_list(content):
    content["annotations"] = {"101": {}}


BAD_FILES = [
    (_areas_as_strings, "annotation 101 of video 1, frame 0 (clip_a/00000.jpg): 'areas' entry "
     "must be null or a number >= 0, got '256'"),
    (_iscrowd_yes, "annotation 102 of video 1: 'iscrowd' must be 0 or 1, got 'yes'"),
    (_polygon_of_two_points, "annotation 201 of video 2, frame 1 (clip_b/00005.jpg): polygon 0 is "
     "not a list of at least 3 (x, y) points (an even number >= 6 of numbers): [10, 10, 30, 26]"),
    (_polygon_of_strings, "annotation 201 of video 2, frame 1 (clip_b/00005.jpg): polygon 0 is "
     "not a list of at least 3 (x, y) points"),
    (_empty_polygons, "annotation 201 of video 2, frame 1 (clip_b/00005.jpg): empty list of "
     "polygons (an absent object is null)"),
    (_bbox_of_three_numbers, "annotation 101 of video 1, frame 0 (clip_a/00000.jpg): 'bboxes' "
     "entry must be null or [x, y, width, height], got [4.0, 6.0, 16.0]"),
    (_areas_too_short, "annotation 102 of video 1: 'areas' has 3 entries, the video has 4 frames"),
    (_duplicate_annotation_id, "annotation #3 (id 101): annotation id 101 appears more than once"),
    (_category_without_name, "category #1 (id 7): lacks 'name'"),
    (_duplicate_category_id, "category #2 (id 3): category id 3 appears more than once"),
    (_video_id_not_an_integer, "video #0 (id 1): 'id' must be an integer, got '1'"),
    (_annotations_not_a_list, "'annotations' must be a list, got {'101': {}}"),
]


@pytest.mark.parametrize("corrupt, problem", BAD_FILES, ids=[c.__name__ for c, _ in BAD_FILES])
def test_bad_file_is_one_line_naming_file_position_and_problem(tiny, corrupt, problem):
    content = tiny.copy_content()
    corrupt(content)
    with pytest.raises(InvalidInput) as error:
        parse_ytvis_annotations(content, "tiny.json")
    assert str(error.value).startswith(f"tiny.json: {problem}")


def test_segmentation_problem_is_the_first_frame_whatever_the_encoding():
    rle = {"size": [2, 3], "counts": [6]}
    bad_rle = {"size": [2, 3], "counts": [5]}
    polygon, bad_polygon = [[0, 0, 2, 0, 2, 1]], [[0, 0, 2, 0]]
    assert find_segmentation_problem([None, rle, polygon], 2, 3) is None
    assert find_segmentation_problem([rle, bad_rle, bad_polygon], 2, 3) == (
        1, "malformed uncompressed RLE: runs add up to 5, not 2*3"
    )
    assert find_segmentation_problem([bad_polygon, bad_rle], 2, 3)[0] == 0
    # results files: RLE only
    assert find_segmentation_problem([rle, polygon], 2, 3, polygons=False) == (
        1, "a segmentation must be None or an RLE dict with 'size' and 'counts', got [[0, 0, 2, 0, 2, 1]]"
    )
