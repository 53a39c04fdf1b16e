"""``identity:``: the optional appearance re-identification of a store (off unless configured).

One config for both model families the project knows, told apart by ``type`` (the way ``detector:`` picks its
family): ``omz`` (Intel Open Model Zoo person-reidentification-retail, RGB 0..255 in, 256-d out) or ``osnet``
(torchreid OSNet, RGB with ImageNet mean/std in, 512-d out). The type chooses the pre-processing and the
default match threshold (:data:`DEFAULT_MATCH_THRESHOLD`); the model file is always the operator's choice and
is never shipped: both public models were trained on research-only data sets (see docs/privacy.md).

Why the defaults (chosen on the dev footage, never on PETS09, which acceptance is scored on; figures in
:mod:`agents.footfall.identity`):

* ``min_box_height_px`` 48: dev crops shrunk to 48 px tall separate people almost as well as full-size ones
  (OMZ: 99th percentile of different-people cosines 0.50 -> 0.53, same person's 5th percentile 0.74 -> 0.73),
  shrunk to 32 px clearly worse (0.63 / 0.73): below ~48 px a crop is mostly up-sampled blur.
* ``edge_margin_px`` 4: a box touching the frame edge is a person cut in half (entering or leaving), whose
  embedding describes half a person.
* ``max_overlap`` 0.3: the share of the box another box may cover; a crop mixing two people is the classic
  cause of a false merge.
* ``samples_per_track`` 3, ``sample_interval_s`` 0.5: three looks spaced half a second apart (different
  steps of the gait), averaged into one *view*, are steadier than one, and a person is resolved about 1 s after
  its first good crop.
* ``max_views`` 2, ``view_interval_s`` 4: a long visit keeps a second view taken at least 4 s after the first
  (a walker seen from another side), so a return seen from that side still finds one of them. At most 6 crops per
  identity bound the embedder's cost per person: on vtest at 7 frames/s (the 2-core dev VM, 1 embedder thread)
  3 views cost OSNet 23 % and the OMZ model 30 % of the frame rate, 2 views 15 % and 23 %.
* ``threads`` 2, ``batch_size`` 8, ``batch_delay_s`` 1: the embedder runs on the camera's worker thread between
  two detections, so it can use the detector's cores; a camera's crops wait up to a second to share one run.
  Per crop on the dev VM: OSNet 12.6 ms alone on 1 thread, 7.8-8.3 ms in batches of 4-8 on 2; OMZ 20.3 and
  12.8-13.6 ms. With both, vtest at 7 frames/s: OSNet 14 %, OMZ 20 % of the frame rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ReidType = Literal["omz", "osnet"]

DEFAULT_MATCH_THRESHOLD: dict[str, float] = {"omz": 0.50, "osnet": 0.65}
"""Cosine similarity (of camera-centred views, :mod:`.gallery`) at which a new sighting is taken to be a known
person, per model family: the lowest multiple of 0.05 above every pair of different people of the dev footage
(figures in the package docstring)."""


class IdentityConfig(BaseModel):
    """``identity: {type: omz | osnet, model: PATH, ...}`` (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ReidType = Field(description="Model family: omz (Open Model Zoo retail re-id) or osnet (torchreid).")
    model: Path = Field(description="ONNX re-identification model file (not shipped; see docs/privacy.md).")
    threads: int = Field(
        2, ge=1, le=64, description="onnxruntime intra-op threads of the embedder (as the detector: they take turns)."
    )
    match_threshold: float | None = Field(
        None, gt=0.0, lt=1.0, description="Cosine similarity to match a known person (null: the model's default)."
    )
    samples_per_track: int = Field(
        3, ge=1, le=32, description="Crops averaged into one view; an identity is resolved on its first view."
    )
    sample_interval_s: float = Field(0.5, ge=0.0, le=60.0, description="Least time between two crops of one view.")
    max_views: int = Field(2, ge=1, le=16, description="Views kept per identity (later looks of a long visit).")
    view_interval_s: float = Field(4.0, ge=0.0, le=600.0, description="Least time between the starts of two views.")
    min_box_height_px: int = Field(48, ge=8, le=4096, description="Smallest box height sampled, pixels.")
    edge_margin_px: int = Field(4, ge=0, le=512, description="Boxes closer than this to the frame edge are cut.")
    max_overlap: float = Field(
        0.3, ge=0.0, le=1.0, description="Largest share of a box that another box may cover for it to be sampled."
    )
    batch_size: int = Field(8, ge=1, le=256, description="Crops per embedder run (at most).")
    batch_delay_s: float = Field(
        1.0, ge=0.0, le=10.0, description="Longest a crop waits for more crops of its camera to share a run."
    )
    lost_after_s: float = Field(
        30.0,
        gt=0.0,
        le=3600.0,
        description="An identity not observed for this long is taken as ended when the caller never said so.",
    )
    max_people: int = Field(20_000, ge=1, description="Gallery bound for one day (oldest ended people dropped).")

    def threshold(self) -> float:
        """The match threshold in force: the configured one, or the model family's default."""
        return self.match_threshold if self.match_threshold is not None else DEFAULT_MATCH_THRESHOLD[self.type]
