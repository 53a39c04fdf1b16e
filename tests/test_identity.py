"""Re-identification and the store's day gallery (agents/footfall/identity).

* The gallery's rules in time and place with synthetic embeddings (a crop's colour names its person): a return
  after the earlier sighting ended, two look-alikes at once on one camera kept apart, overlapping views merged, a
  break in one visit not a return, the day boundary forgetting everything (work in flight included).
* Sampling: which boxes are worth a crop.
* The embedder against tiny ONNX graphs built with ``onnx.helper``: shapes that do not fit are errors naming the
  expected and the found shapes; the pixels reach the model in each family's format; batches of any size.
* The embedder on real crops of the dev footage (TUD-Campus ground truth): the same person is closer than others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydantic import ValidationError

from agents.footfall.detectors import ModelNotFoundError, ModelShapeError
from agents.footfall.identity import IdentityConfig, Resolution, StoreIdentity
from agents.footfall.identity.embedder import ReidEmbedder
from agents.footfall.identity.sampling import coverage, good_boxes
from agents.footfall.mot import read_mot_ground_truth
from agents.footfall.types import Tracks

# ------------------------------------------------------------------------------------ synthetic people

DIM = 64
_BASIS = np.random.default_rng(12).normal(size=(32, DIM)).astype(np.float32)
_BASIS /= np.linalg.norm(_BASIS, axis=1, keepdims=True)
FRAME_HW = (480, 640)


def colour_embedder(noise: float = 0.05, seed: int = 0) -> Callable[[list[npt.NDArray[np.uint8]]], np.ndarray]:
    """Embeds a crop as its person's basis vector (the person code is the crop's red value) plus a little noise."""
    rng = np.random.default_rng(seed)

    def embed(crops: list[npt.NDArray[np.uint8]]) -> np.ndarray:
        rows = []
        for c in crops:
            code = int(c[c.shape[0] // 2, c.shape[1] // 2, 2])
            v = _BASIS[code] + rng.normal(scale=noise, size=DIM).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows).astype(np.float32)

    return embed


def scene(people: dict[int, tuple[int, int]]) -> tuple[npt.NDArray[np.uint8], Tracks]:
    """A frame and its tracks: ``track id -> (person code, x)``, each a 60x120 box at y=150."""
    frame = np.zeros((*FRAME_HW, 3), np.uint8)
    ids, boxes = [], []
    for tid, (code, x) in people.items():
        frame[150:270, x : x + 60, 2] = code
        ids.append(tid)
        boxes.append((x, 150, x + 60, 270))
    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
    return frame, Tracks(np.asarray(ids, np.int64), xyxy, np.ones(len(ids), np.float32))


def config(**overrides: object) -> IdentityConfig:
    base: dict[str, object] = {
        "type": "omz",
        "model": "unused.onnx",
        "sample_interval_s": 0.0,
        "max_views": 1,
        "batch_delay_s": 0.0,
    }
    return IdentityConfig.model_validate({**base, **overrides})


def walk(
    store: StoreIdentity,
    camera: str,
    people: dict[int, tuple[int, int]],
    t0: float,
    frames: int = 4,
    identities: dict[int, int] | None = None,
) -> float:
    """Observe ``people`` for ``frames`` frames at 10 frames/s from ``t0``; identity = track id unless given."""
    frame, tracks = scene(people)
    mapping = identities if identities is not None else {tid: tid for tid in people}
    t = t0
    for k in range(frames):
        t = t0 + 0.1 * k
        store.observe(camera, frame, tracks, mapping, t)
    return t


def by_identity(resolutions: list[Resolution]) -> dict[tuple[str, int], Resolution]:
    return {(r.camera, r.identity): r for r in resolutions}


# ------------------------------------------------------------------------------------------- the rules


def test_a_person_who_left_and_came_back_is_returning() -> None:
    store = StoreIdentity(config(), embedder=colour_embedder())
    t = walk(store, "door", {1: (1, 100), 2: (2, 300)}, 0.0)
    store.ended("door", 1, t, crossed_out=True)
    store.ended("door", 2, t, crossed_out=False)
    walk(store, "door", {3: (1, 400)}, 60.0)  # person 1 again, a minute later
    walk(store, "door", {4: (3, 200)}, 70.0)  # somebody new
    got = by_identity(store.resolutions())
    assert got[("door", 3)].uid == got[("door", 1)].uid
    assert got[("door", 3)].returning and not got[("door", 3)].new_person
    assert got[("door", 4)].new_person and got[("door", 4)].uid not in {got[("door", 1)].uid, got[("door", 2)].uid}
    person = store.person_of("door", 3)
    assert person is not None and person.returning and person.first_seen_t == 0.0
    assert store.stats()["people"] == 3 and store.stats()["returning"] == 1


def test_two_look_alikes_at_once_on_one_camera_are_two_people() -> None:
    store = StoreIdentity(config(), embedder=colour_embedder())
    walk(store, "door", {1: (1, 100), 2: (1, 400)}, 0.0, frames=6)  # identical looks, side by side
    got = by_identity(store.resolutions())
    assert got[("door", 1)].uid != got[("door", 2)].uid
    assert got[("door", 1)].new_person and got[("door", 2)].new_person
    assert store.stats()["refused"] >= 1


def test_overlapping_views_at_the_same_moment_are_one_person_not_returning() -> None:
    store = StoreIdentity(config(), embedder=colour_embedder())
    frame, tracks = scene({7: (5, 200)})
    for k in range(5):
        t = 0.1 * k
        store.observe("left", frame, tracks, {7: 1}, t)
        store.observe("right", frame, tracks, {7: 1}, t)  # the other camera, another counter's identity 1
    got = by_identity(store.resolutions())
    assert got[("left", 1)].uid == got[("right", 1)].uid
    assert not got[("right", 1)].returning and not got[("right", 1)].new_person


def test_a_break_in_one_visit_is_the_same_person_not_a_return() -> None:
    store = StoreIdentity(config(), embedder=colour_embedder())
    walk(store, "door", {1: (4, 100)}, 0.0)
    # the counter lost identity 1 behind a shelf (not ended yet) and gave the re-found person identity 2
    walk(store, "door", {9: (4, 160)}, 2.0, identities={9: 2})
    got = by_identity(store.resolutions())
    assert got[("door", 2)].uid == got[("door", 1)].uid and not got[("door", 2)].returning


def test_a_match_below_the_threshold_is_a_new_person() -> None:
    store = StoreIdentity(config(match_threshold=0.99), embedder=colour_embedder(noise=0.3))
    t = walk(store, "door", {1: (6, 100)}, 0.0)
    store.ended("door", 1, t, crossed_out=True)
    walk(store, "door", {2: (6, 100)}, 30.0)
    got = by_identity(store.resolutions())
    assert got[("door", 2)].new_person and got[("door", 2)].uid != got[("door", 1)].uid


def test_an_identity_without_a_usable_crop_is_still_a_person() -> None:
    store = StoreIdentity(config(), embedder=colour_embedder())
    frame = np.zeros((*FRAME_HW, 3), np.uint8)
    tiny = Tracks(np.array([1]), np.array([[100, 100, 110, 120]], np.float32), np.ones(1, np.float32))
    store.observe("door", frame, tiny, {1: 1}, 0.0)
    assert store.person_of("door", 1) is None  # unresolved while it may still get a good crop
    store.ended("door", 1, 0.5, crossed_out=False)
    (resolution,) = store.resolutions()
    assert resolution.new_person and store.stats()["unsampled"] == 1 and store.stats()["embedded"] == 0


def test_an_identity_only_ever_cut_by_the_edge_is_matched_on_its_best_lesser_crop() -> None:
    store = StoreIdentity(config(), embedder=colour_embedder())
    frame, tracks = scene({1: (3, 200)})
    t = walk(store, "front", {1: (3, 200)}, 0.0)
    store.ended("front", 1, t, crossed_out=False)
    # a second camera sees the same person only half, across its left edge, at the same moment
    frame[:, :30] = 0
    frame[150:270, 0:30, 2] = 3
    edge = Tracks(np.array([5]), np.array([[0, 150, 30, 270]], np.float32), np.ones(1, np.float32))
    for k in range(3):
        store.observe("side", frame, edge, {5: 1}, t - 0.2 + 0.1 * k)
    store.ended("side", 1, t, crossed_out=False)
    got = by_identity(store.resolutions())
    assert got[("side", 1)].uid == got[("front", 1)].uid
    assert store.stats()["unsampled"] == 0


def test_identities_not_observed_for_long_end_on_their_own() -> None:
    store = StoreIdentity(config(lost_after_s=5.0), embedder=colour_embedder())
    walk(store, "door", {1: (2, 100)}, 0.0)
    walk(store, "door", {2: (2, 100)}, 20.0)  # nobody called ended(): identity 1 went quiet 20 s ago
    got = by_identity(store.resolutions())
    assert got[("door", 2)].uid == got[("door", 1)].uid and got[("door", 2)].returning


def test_clear_day_forgets_people_and_samples() -> None:
    store = StoreIdentity(config(), embedder=colour_embedder())
    t = walk(store, "door", {1: (1, 100)}, 0.0)
    store.ended("door", 1, t, crossed_out=True)
    assert store.stats()["people"] == 1
    store.clear_day()
    assert store.person_of("door", 1) is None
    assert all(v == 0 for k, v in store.gallery.stats().items())
    store.resolutions()
    walk(store, "door", {2: (1, 100)}, 100.0)  # the same look after the boundary: a new person of the new day
    (resolution,) = store.resolutions()
    assert resolution.new_person and resolution.uid == 1 and not resolution.returning


def test_work_in_flight_at_the_day_boundary_is_dropped() -> None:
    inner = colour_embedder()
    holder: list[StoreIdentity] = []

    def embed_then_midnight(crops: list[npt.NDArray[np.uint8]]) -> np.ndarray:
        out = inner(crops)
        holder[0].clear_day()  # the boundary passes while this camera's crops are in the model
        return out

    store = StoreIdentity(config(samples_per_track=1), embedder=embed_then_midnight)
    holder.append(store)
    walk(store, "door", {1: (1, 100)}, 0.0, frames=1)
    assert store.resolutions() == [] and store.gallery.stats()["sightings"] == 0


def test_crops_wait_for_a_batch_and_an_ending_identity_is_embedded_first() -> None:
    runs: list[int] = []
    inner = colour_embedder()

    def counting(crops: list[npt.NDArray[np.uint8]]) -> np.ndarray:
        runs.append(len(crops))
        return inner(crops)

    store = StoreIdentity(config(batch_size=4, batch_delay_s=1.0), embedder=counting)
    t = walk(store, "door", {1: (1, 100)}, 0.0, frames=3)  # 3 crops queued: neither 4 nor 1 s old
    assert runs == [] and store.person_of("door", 1) is None
    walk(store, "door", {1: (1, 100), 2: (2, 300)}, t + 0.1, frames=1)  # identity 1's view is full; 4th crop
    assert runs == [4] and store.person_of("door", 1) is not None
    walk(store, "door", {2: (2, 300)}, t + 0.2, frames=2)  # identity 2 has 3 crops, 2 of them queued
    store.ended("door", 2, t + 0.5, crossed_out=True)  # embedded before it is resolved
    assert runs == [4, 2] and store.person_of("door", 2) is not None
    assert store.stats()["unsampled"] == 0 and store.stats()["embedded"] == 6


def test_stats_are_counts_only() -> None:
    store = StoreIdentity(config(), embedder=colour_embedder())
    walk(store, "door", {1: (1, 100)}, 0.0)
    stats = store.stats()
    assert set(stats) >= {"people", "resolved", "merges", "returning", "embedded"}
    assert all(type(v) is int for v in stats.values())


def test_cameras_on_their_own_threads_share_one_gallery() -> None:
    store = StoreIdentity(config(), embedder=colour_embedder())
    errors: list[BaseException] = []

    def camera(name: str, x: int) -> None:
        try:
            walk(store, name, {1: (1, x), 2: (2, x + 200)}, 0.0, frames=50)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=camera, args=(f"cam{i}", 50 + 20 * i)) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    got = by_identity(store.resolutions())
    assert len(got) == 6
    assert len({got[(f"cam{i}", 1)].uid for i in range(3)}) == 1  # one person seen by three cameras at once
    assert store.stats()["people"] == 2


# ------------------------------------------------------------------------------------------ sampling


def test_sampling_takes_whole_uncovered_people_only() -> None:
    cfg = config(min_box_height_px=48, edge_margin_px=4, max_overlap=0.3)
    boxes = np.array(
        [
            [100, 100, 150, 200],  # good
            [300, 100, 320, 130],  # too small
            [0, 100, 50, 200],  # cut by the left edge
            [400, 100, 460, 220],  # half covered by the next one
            [430, 100, 490, 220],
        ],
        np.float32,
    )
    assert good_boxes(boxes, FRAME_HW, cfg).tolist() == [True, False, False, False, False]
    assert coverage(boxes[[0]]).tolist() == [0.0]
    assert coverage(boxes[3:]).tolist() == pytest.approx([0.5, 0.5])


# -------------------------------------------------------------------------------------------- config


def test_config_type_picks_the_default_threshold_and_unknown_keys_fail() -> None:
    assert config().threshold() == 0.50
    assert config(type="osnet").threshold() == 0.65
    assert config(match_threshold=0.7).threshold() == 0.7
    with pytest.raises(ValidationError, match="type"):
        config(type="resnet")
    with pytest.raises(ValidationError, match="max_overlap_iou"):
        config(max_overlap_iou=0.3)


# ----------------------------------------------------------------------------------- embedder (stubs)


def reid_stub(
    path: Path,
    *,
    input_shape: list[int | str] | None = None,
    dim: int = 256,
    output_rank: int = 2,
    inputs: int = 1,
) -> Path:
    """``embedding = GlobalAveragePool(x)`` flattened, times a ``[3, dim]`` matrix whose first 3 columns are the
    identity: the first three numbers are the mean of each input channel, as the model received it."""
    shape = input_shape or ["batch", 3, 256, 128]
    channels = shape[1] if isinstance(shape[1], int) else 3
    weight = np.zeros((channels, dim), np.float32)
    weight[:3, :3] = np.eye(3)
    nodes = [
        helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "weight"], ["embedding" if output_rank == 2 else "flat2"]),
    ]
    out_shape: list[int | str] = ["batch", dim]
    if output_rank != 2:
        nodes.append(helper.make_node("Unsqueeze", ["flat2", "axes"], ["embedding"]))
        out_shape = ["batch", 1, dim]
    graph_inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, shape)]
    graph_inputs += [helper.make_tensor_value_info(f"extra{i}", TensorProto.FLOAT, [1]) for i in range(inputs - 1)]
    graph = helper.make_graph(
        nodes,
        "reid_stub",
        graph_inputs,
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(np.array([1]), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_embedder_errors_name_the_expected_and_found_shapes(tmp_path: Path) -> None:
    small = reid_stub(tmp_path / "small.onnx", input_shape=["batch", 3, 128, 64])
    with pytest.raises(ModelShapeError, match=r"expected .*\[batch, 3, 256, 128\].*found .*\[batch, 3, 128, 64\]"):
        ReidEmbedder(small, "omz")
    narrow = reid_stub(tmp_path / "narrow.onnx", dim=128)
    with pytest.raises(ModelShapeError, match=r"expected output \[2, 256\].*found \[2, 128\]"):
        ReidEmbedder(narrow, "omz")
    with pytest.raises(ModelShapeError, match=r"\[2, 512\].*found \[2, 256\]"):
        ReidEmbedder(reid_stub(tmp_path / "omz.onnx"), "osnet")
    hwc = reid_stub(tmp_path / "hwc.onnx", input_shape=["batch", 256, 128, 3])
    with pytest.raises(ModelShapeError, match="channels last"):
        ReidEmbedder(hwc, "omz")
    rank3 = reid_stub(tmp_path / "rank3.onnx", output_rank=3)
    with pytest.raises(ModelShapeError, match=r"found .*\[batch, 1, 256\]"):
        ReidEmbedder(rank3, "omz")
    two = reid_stub(tmp_path / "two.onnx", inputs=2)
    with pytest.raises(ModelShapeError, match="found inputs data .*extra0"):
        ReidEmbedder(two, "omz")
    with pytest.raises(ModelNotFoundError, match="missing.onnx"):
        ReidEmbedder(tmp_path / "missing.onnx", "omz")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelShapeError, match="could not be loaded"):
        ReidEmbedder(junk, "osnet")
    with pytest.raises(ValueError, match="unknown re-identification type"):
        ReidEmbedder(small, "resnet")


def test_embedder_feeds_each_family_its_pixel_format(tmp_path: Path) -> None:
    blue = np.zeros((100, 40, 3), np.uint8)
    blue[..., 0] = 255  # BGR: pure blue
    omz = ReidEmbedder(reid_stub(tmp_path / "omz.onnx"), "omz")
    (vector,) = omz.embed([blue])
    assert vector[:3] == pytest.approx([0.0, 0.0, 1.0], abs=1e-6)  # RGB 0..255, no mean/std
    osnet = ReidEmbedder(reid_stub(tmp_path / "osnet.onnx", dim=512), "osnet")
    (vector,) = osnet.embed([blue])
    expected = np.array([(0 - 0.485) / 0.229, (0 - 0.456) / 0.224, (1 - 0.406) / 0.225])
    assert vector[:3] == pytest.approx(expected / np.linalg.norm(expected), abs=1e-4)  # /255, ImageNet mean/std
    tensor = osnet.preprocess([blue])
    assert tensor.shape == (1, 3, 256, 128) and tensor.dtype == np.float32


def test_embedder_batches_any_number_of_crops_and_fixed_batch_models(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (int(h), 40, 3), dtype=np.uint8) for h in rng.integers(50, 200, 11)]
    dynamic = ReidEmbedder(reid_stub(tmp_path / "dynamic.onnx"), "omz", batch_size=4)
    fixed = ReidEmbedder(reid_stub(tmp_path / "fixed.onnx", input_shape=[1, 3, 256, 128]), "omz", batch_size=4)
    a, b = dynamic.embed(crops), fixed.embed(crops)
    assert a.shape == b.shape == (11, 256) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0) and np.allclose(a, b, atol=1e-5)
    assert dynamic.embed([]).shape == (0, 256)
    with pytest.raises(ValueError, match=r"uint8 BGR crops, got float32"):
        dynamic.embed([np.zeros((10, 10, 3), np.float32)])


# ---------------------------------------------------------------------------------- embedder (footage)


@pytest.fixture(scope="module")
def tud_people(shared_data: Path) -> dict[int, list[npt.NDArray[np.uint8]]]:
    """Crops of the TUD-Campus ground truth (dev footage): person id -> whole, uncovered crops, in time order."""
    seq = shared_data / "footage" / "tud_campus"
    frames = sorted((seq / "img1").glob("*.jpg"))
    people: dict[int, list[npt.NDArray[np.uint8]]] = {}
    for mot_frame, truth in sorted(read_mot_ground_truth(seq / "gt" / "gt.txt").items()):
        if (mot_frame - 1) % 5:
            continue
        image: npt.NDArray[np.uint8] = np.asarray(cv2.imread(str(frames[mot_frame - 1])), np.uint8)
        frame_hw = (int(image.shape[0]), int(image.shape[1]))
        ok = good_boxes(truth.xyxy.astype(np.float32), frame_hw, config(min_box_height_px=100))
        for keep, gid, box in zip(ok.tolist(), truth.ids.tolist(), truth.xyxy.tolist(), strict=True):
            if keep:
                x1, y1, x2, y2 = (int(round(v)) for v in box)
                people.setdefault(gid, []).append(image[y1:y2, x1:x2].copy())
    return {gid: crops for gid, crops in people.items() if len(crops) >= 2}


@pytest.mark.parametrize(
    "reid_type, file", [("omz", "person-reidentification-retail-0267.onnx"), ("osnet", "osnet_x0_25_msmt17.onnx")]
)
def test_same_person_is_closer_than_other_people(
    shared_data: Path, tud_people: dict[int, list[npt.NDArray[np.uint8]]], reid_type: str, file: str
) -> None:
    embedder = ReidEmbedder(shared_data / "models" / "reid" / file, reid_type)
    assert len(tud_people) >= 4
    first = {gid: embedder.embed(crops[:1])[0] for gid, crops in tud_people.items()}
    last = {gid: embedder.embed(crops[-1:])[0] for gid, crops in tud_people.items()}
    for gid in tud_people:
        same = float(first[gid] @ last[gid])
        others = [float(first[gid] @ last[other]) for other in tud_people if other != gid]
        assert same > max(others), (gid, same, others)  # rank-1 on every person
