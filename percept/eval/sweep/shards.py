"""Sharding a sweep's chunks over jobs or ``torch.distributed`` ranks, whole references per shard."""

from __future__ import annotations

from percept.errors import InputError

Shard = tuple[int, int]


def shard_chunks(chunks: list[tuple[str, list[int]]], rank: int, world: int) -> set[int]:
    """The chunk indices that shard ``rank`` of ``world`` computes: whole references, balanced by image count.

    References (with all their chunks) go, largest first, to the shard holding the fewest images so
    far, so each reference image runs through the network on one shard only. Deterministic: every
    process computes the same split from the same chunks.

    Args:
        chunks: from :func:`make_chunks`.
        rank: this shard, ``0 <= rank < world``.
        world: number of shards.

    Example:
        >>> chunks = [("a", [0, 1]), ("a", [2]), ("b", [3]), ("c", [4, 5])]
        >>> sorted(shard_chunks(chunks, 0, 2)), sorted(shard_chunks(chunks, 1, 2))
        ([0, 1], [2, 3])
    """
    rank, world = check_shard((rank, world))
    groups: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}
    for i, (ref_id, rows) in enumerate(chunks):
        groups.setdefault(ref_id, []).append(i)
        sizes[ref_id] = sizes.get(ref_id, 0) + len(rows)
    load = [0] * world
    mine: set[int] = set()
    for ref_id in sorted(groups, key=lambda r: -sizes[r]):  # stable: ties keep database order
        target = min(range(world), key=lambda k: (load[k], k))
        load[target] += sizes[ref_id]
        if target == rank:
            mine.update(groups[ref_id])
    return mine


def distributed_shard() -> Shard | None:
    """``(rank, world)`` when torch.distributed is initialised with more than one process, else ``None``.

    Example:
        >>> distributed_shard() is None  # a single process
        True
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def check_shard(shard) -> Shard:
    """``shard`` as ``(rank, world)`` integers with ``0 <= rank < world``.

    Raises:
        InputError: not a pair of integers, or out of range.

    Example:
        >>> check_shard(("1", 4))
        (1, 4)
        >>> check_shard((4, 4))
        Traceback (most recent call last):
        ...
        percept.errors.InputError: shard must be (rank, world) with 0 <= rank < world, got (4, 4)
    """
    try:
        rank, world = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise InputError(f"shard must be (rank, world), e.g. (0, 4), got {shard!r}") from None
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"shard must be (rank, world) with 0 <= rank < world, got ({rank}, {world})")
    return rank, world


def chunks_to_compute(chunks: list[tuple[str, list[int]]], shard: Shard | None) -> tuple[set[int], bool]:
    """The chunks this process computes and whether rows are then gathered from every rank: ``shard``
    given, its share; else under torch.distributed the rank's share (gathered); else all of them.

    Example:
        >>> chunks_to_compute([("a", [0, 1]), ("b", [2])], None)
        ({0, 1}, False)
    """
    if shard is not None:
        return shard_chunks(chunks, *check_shard(shard)), False
    ranks = distributed_shard()
    if ranks is None:
        return set(range(len(chunks))), False
    return shard_chunks(chunks, *ranks), True


def gather_objects(obj):
    """Every rank's ``obj`` (picklable), in rank order, on every rank (``torch.distributed`` initialised).

    Example:
        >>> gather_objects({"rows": 3})  # on each of 2 ranks  # doctest: +SKIP
        [{'rows': 3}, {'rows': 3}]
    """
    import torch.distributed as dist

    objects: list = [None] * dist.get_world_size()
    dist.all_gather_object(objects, obj)
    return objects
