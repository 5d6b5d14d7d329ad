"""Helpers shared by the benchmarks of issue #14: cold (un-memoised) radius timings."""


def forget_memos() -> None:
    """Clear every memo the library keeps between radius calls (those present in this tree):
    the Monte-Carlo direction sets and sample bank, and the exact engine's profile-search memo
    where it exists, so the next radius is computed from scratch."""
    from unicr_fast import radius as radius_mod, samples as samples_mod
    getattr(radius_mod, "_direction_sets", {}).clear()
    lock = getattr(samples_mod, "_cache_lock", None)
    if lock is not None:
        with lock:
            samples_mod._cache.clear()
    try:
        from unicr_fast import exact_profile
    except ImportError:
        return
    getattr(exact_profile, "_MEMO", {}).clear()
