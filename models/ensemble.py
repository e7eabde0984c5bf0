"""Model ensemble: several detectors look at each tile; a candidate's score is their mean.

Two detectors trained differently (the shipped early-fusion YOLO11n-seg and a Siamese network
on an ImageNet-pretrained backbone) make different mistakes. :class:`ModelEnsemble` runs each
member on the same tiles at a low floor (``member_conf``), groups their candidates that outline
the same thing (intersection over union of the outlines ≥ ``min_iou``, class-agnostic; at most
one candidate per member in a group), and gives each group one candidate: the outline, box and
class of the first member's candidate where it has one (else the highest-scoring member's), and
the **weighted mean of the members' scores**, a member that found nothing there counting 0.
A structure both see at 0.5 scores 0.5; one that only one member sees at 0.9 scores 0.45 with
two equal members. The lead threshold is then calibrated on the fused score like any other.

``gate`` makes it a cascade: the first ``front`` members (1: the main detector) look at every
tile, the others only at tiles where one of those has a candidate scoring at least ``gate``.
With weights 3:1 a candidate the first member scores below 0.133 cannot reach a mean of 0.35
however sure the other is, so a gate of 0.1 loses no lead at a threshold of 0.35
(:meth:`lossless_gate`) and spares the other members every quiet tile. With two detectors in
front (3:3:2, the third weighing a quarter) a place both score below ``g`` means at most
``0.75 g + 0.25``: a gate of 0.066 loses nothing at 0.30.

Every member must tile alike (the same working GSD and input size); the first member is the
primary: ``card``, ``weights`` and everything else but :meth:`predict` are its.

>>> from models.candidates import Candidates
>>> class Fixed:
...     def __init__(self, score): self.s = score
...     def predict(self, images, conf=0.25):
...         return [Candidates(np.array([[8, 8, 24, 24]], np.float32),
...                            np.array([self.s], np.float32), np.zeros(1, np.int64))]
>>> tile = np.zeros((64, 64, 6), np.uint8)
>>> round(float(ModelEnsemble([Fixed(0.8), Fixed(0.4)]).predict([tile], conf=0.1)[0].score[0]), 4)
0.6
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from models.candidates import Candidates
from models.consensus import candidate_geometries

__all__ = ["ModelEnsemble", "Wholes"]


class ModelEnsemble:
    """Mean-score ensemble of detectors (see module doc)."""

    def __init__(
        self,
        members: Sequence[Any],
        weights: Sequence[float] | None = None,
        min_iou: float = 0.3,
        member_conf: float = 0.05,
        gate: float | None = None,
        front: int = 1,
        wholes: Wholes | None = None,
    ) -> None:
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 detectors, got {len(members)}")
        w = [1.0] * len(members) if weights is None else [float(x) for x in weights]
        if len(w) != len(members):
            raise ValueError(f"ensemble: {len(w)} weights for {len(members)} detectors")
        if any(x < 0 for x in w) or sum(w) <= 0:
            raise ValueError(f"ensemble weights must be >= 0 and not all 0, got {w}")
        if not 0 < min_iou <= 1:
            raise ValueError(f"ensemble min_iou must be in (0, 1], got {min_iou!r}")
        if not 0 <= member_conf < 1:
            raise ValueError(f"ensemble member_conf must be in [0, 1), got {member_conf!r}")
        if gate is not None and not 0 <= gate < 1:
            raise ValueError(f"ensemble gate must be in [0, 1) or None, got {gate!r}")
        if not 1 <= front < len(members):
            raise ValueError(
                f"ensemble front must be 1 to {len(members) - 1} (members looking at every "
                f"tile), got {front!r}"
            )
        _check_alike(members)
        self.members = list(members)
        self.wholes = wholes
        total = sum(w)
        self.member_weights = [x / total for x in w]
        self.min_iou = float(min_iou)
        self.member_conf = float(member_conf)
        self.gate = None if gate is None else float(gate)
        self.front = int(front)
        #: (tiles the other members looked at, tiles seen), for the run's log and benchmarks
        self.looked = (0, 0)

    def __getattr__(self, name: str) -> Any:
        if name == "members":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.members[0], name)

    @property
    def ensemble(self) -> dict[str, float]:
        """The settings, for provenance (the members' weights files are in ``members``)."""
        out = {f"w{i}": round(w, 4) for i, w in enumerate(self.member_weights)}
        out |= {"min_iou": self.min_iou, "member_conf": self.member_conf}
        out = out if self.front == 1 else out | {"front": self.front}
        if self.wholes is not None:
            out |= {f"whole_{k}": v for k, v in self.wholes.settings().items()}
        return out if self.gate is None else out | {"gate": self.gate}

    @property
    def lossless_from(self) -> float:
        """The lowest lead threshold at which the gate loses nothing (0 without a gate)."""
        if self.gate is None:
            return 0.0
        w0 = sum(self.member_weights[: self.front])
        return w0 * self.gate + (1.0 - w0)

    def lossless_gate(self, threshold: float) -> float:
        """The largest ``gate`` that loses no candidate scoring ``threshold`` or more: with the
        front members below it and every other member at 1, the mean stays under ``threshold``."""
        w0 = sum(self.member_weights[: self.front])
        return max(0.0, (threshold - (1.0 - w0)) / w0)

    def predict(
        self,
        images: Sequence[np.ndarray],
        conf: float = 0.25,
        need: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> list[Candidates]:
        """Fused candidates on ``images`` scoring at least ``conf``.

        ``need`` (one score per image) says that on image ``i`` only candidates scoring at least
        ``need[i]`` matter to the caller: a member after the first then looks at an image only
        where the members before it leave that score within reach (their best there, weighted,
        plus the weight of every member still to look). Whatever scores ``need[i]`` or more is
        exactly what it would be without it; below that the scores may be lower.
        """
        floor = min(self.member_conf, conf)
        n = len(images)
        if need is not None and len(need) != n:
            raise ValueError(f"need: {len(need)} scores for {n} images")
        per_member: list[list[Candidates]] = []
        best: list[np.ndarray] = []  # per member, its best score on each image (-1: nothing)
        look = list(range(n))  # the tiles the members after the front looked at
        for k, m in enumerate(self.members):
            tiles = list(range(n))
            if k >= self.front:
                if k == self.front and self.gate is not None:  # the cascade (module doc)
                    front_best = np.max(best, axis=0)
                    look = [i for i in tiles if front_best[i] >= 0 and front_best[i] >= self.gate]
                tiles = look
            if need is not None and k:
                reach = (sum(w * np.maximum(b, 0.0)
                             for w, b in zip(self.member_weights, best, strict=False))
                         + sum(self.member_weights[k:]))  # fmt: skip
                tiles = [i for i in tiles if reach[i] >= need[i] - 1e-9]
            seen = m.predict([images[i] for i in tiles], conf=floor, **kwargs) if tiles else []
            row = [Candidates.empty()] * n
            for i, c in zip(tiles, seen, strict=True):
                row[i] = c
            per_member.append(row)
            best.append(np.array([float(c.score.max()) if len(c) else -1.0 for c in row]))
        self.looked = (self.looked[0] + len(look), self.looked[1] + n)
        return [self._fuse([seen[i] for seen in per_member], conf) for i in range(n)]

    def _fuse(self, seen: list[Candidates], conf: float) -> Candidates:
        if not any(len(c) for c in seen):
            return Candidates.empty()
        pool = Candidates.merge(seen)
        owner = np.concatenate([np.full(len(c), k) for k, c in enumerate(seen)])
        geoms = candidate_geometries(pool)
        areas = shapely.area(geoms)
        order = np.argsort(-pool.score, kind="stable")
        tree = shapely.STRtree(geoms)
        group = np.full(len(pool), -1)
        members: list[dict[int, int]] = []
        for i in order:
            if group[i] >= 0:
                continue
            g = len(members)
            members.append({int(owner[i]): int(i)})
            group[i] = g
            for j in sorted(
                tree.query(geoms[i], predicate="intersects"), key=lambda j: -pool.score[j]
            ):
                if group[j] >= 0 or int(owner[j]) in members[g]:
                    continue
                inter = geoms[i].intersection(geoms[j]).area
                union = areas[i] + areas[j] - inter
                if union > 0 and inter / union >= self.min_iou:
                    members[g][int(owner[j])] = int(j)
                    group[j] = g
        fused = [
            sum(self.member_weights[k] * float(pool.score[j]) for k, j in found.items())
            for found in members
        ]
        lead = [
            found[0] if 0 in found else max(found.values(), key=lambda j: pool.score[j])
            for found in members
        ]
        class_of = [int(pool.class_id[j]) for j in lead]
        if self.wholes is not None:
            for whole, parts in self.wholes.find(pool, geoms, members):
                joined = [whole, *parts]
                best = max(joined, key=lambda g: fused[g])
                class_of[whole] = class_of[best]
                fused[whole] = fused[best]
                lead[whole] = self.wholes.outline_of(members[whole], pool)
                for g in parts:
                    fused[g] = -1.0  # joined into the whole
        keep = [g for g in range(len(members)) if fused[g] >= conf]
        if not keep:
            return Candidates.empty()
        out = pool[np.asarray([lead[g] for g in keep])]
        scores = np.clip(np.asarray([fused[g] for g in keep], np.float32), 0, 1)
        classes = np.asarray([class_of[g] for g in keep], out.class_id.dtype)
        return Candidates(out.xyxy, scores, classes, out.tile_id, out.outline)


@dataclass(frozen=True)
class Wholes:
    """Join the main detector's parts of one structure under another member's whole outline.

    The main detector may outline one building as two to four roof planes; another member may
    outline the whole building, grouped (IoU ≥ ``min_iou``) with the largest plane or with none,
    and the other planes stay leads of their own. A candidate of a member other than the main
    detector (index 0), the best such in its group and scoring at least ``min_score``, is a
    *whole* when at least ``min_parts`` groups holding a main-detector candidate (its own group
    among them) have at least ``inside`` of that outline inside it, and those outlines cover at
    least ``min_cover`` of it. Those groups become one: the whole's outline, the best group's
    class and fused score (no score is raised). Wholes are taken best score first; a group joins
    at most one (model card, *A whole building over its parts*).

    >>> from shapely import box
    >>> geoms = np.array([box(0, 0, 10, 10), box(0, 0, 4, 10), box(6, 0, 10, 10)], dtype=object)
    >>> pool = Candidates(np.array([[0, 0, 10, 10], [0, 0, 4, 10], [6, 0, 10, 10]], np.float32),
    ...                   np.array([0.6, 0.5, 0.4], np.float32), np.zeros(3, np.int64))
    >>> Wholes().find(pool, geoms, [{2: 0}, {0: 1}, {0: 2}])  # member 2's box holds both
    [(0, [1, 2])]
    """

    min_parts: int = 2
    inside: float = 0.6
    min_score: float = 0.25
    min_cover: float = 0.2

    def __post_init__(self) -> None:
        if self.min_parts < 1:
            raise ValueError(f"wholes min_parts must be >= 1, got {self.min_parts!r}")
        for name in ("inside", "min_score", "min_cover"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"wholes {name} must be in [0, 1], got {v!r}")

    def settings(self) -> dict[str, float]:
        return {"parts": self.min_parts, "inside": self.inside, "score": self.min_score,
                "cover": self.min_cover}  # fmt: skip

    @staticmethod
    def outline_of(found: dict[int, int], pool: Candidates) -> int:
        """The whole group's outline: its best candidate of a member other than the main one."""
        return max((j for k, j in found.items() if k != 0), key=lambda j: pool.score[j])

    def find(
        self, pool: Candidates, geoms: np.ndarray, groups: list[dict[int, int]]
    ) -> list[tuple[int, list[int]]]:
        """(whole group, [part groups]) pairs among ``groups`` (each member -> its candidate's
        index in ``pool``; ``geoms`` the candidates' outlines)."""
        main_of = {g: found[0] for g, found in enumerate(groups) if 0 in found}
        if len(main_of) < self.min_parts:
            return []
        part_groups = np.asarray(list(main_of), dtype=np.int64)
        row_of = {int(g): i for i, g in enumerate(part_groups)}
        part_geoms = geoms[np.asarray([main_of[int(g)] for g in part_groups], dtype=np.int64)]
        part_area = shapely.area(part_geoms)
        tree = shapely.STRtree(part_geoms)
        candidates = [
            (float(pool.score[self.outline_of(found, pool)]), g)
            for g, found in enumerate(groups)
            if any(k != 0 for k in found)
        ]
        taken: set[int] = set()
        out: list[tuple[int, list[int]]] = []
        for score, g in sorted(candidates, key=lambda t: (-t[0], t[1])):
            if score < self.min_score or g in taken:
                continue
            w = geoms[self.outline_of(groups[g], pool)]
            near = tree.query(w, predicate="intersects")
            inner = [
                int(part_groups[i])
                for i in near
                if (int(part_groups[i]) not in taken or int(part_groups[i]) == g)
                and part_area[i] > 0
                and shapely.area(shapely.intersection(part_geoms[i], w))
                >= self.inside * part_area[i]
            ]  # the whole's own group's main outline, when inside, is one of its parts
            if len(inner) < self.min_parts:
                continue
            union = shapely.union_all(part_geoms[[row_of[p] for p in inner]])
            if shapely.area(shapely.intersection(union, w)) < self.min_cover * shapely.area(w):
                continue
            parts = sorted(p for p in inner if p != g)
            taken.update(parts)
            taken.add(g)
            out.append((g, parts))
        return out


def _check_alike(members: Sequence[Any]) -> None:
    cards = [getattr(m, "card", None) for m in members]
    if any(c is None for c in cards):
        return  # plain callables in tests: nothing to compare
    first = cards[0]
    for k, card in enumerate(cards[1:], start=1):
        for attr in ("working_gsd_m", "imgsz"):
            a, b = getattr(first, attr, None), getattr(card, attr, None)
            if a != b:
                raise ValueError(
                    f"ensemble member {k} has {attr} {b!r} but the first has {a!r}; "
                    "members must tile alike"
                )
