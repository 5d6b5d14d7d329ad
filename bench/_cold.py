"""Helpers shared by the benchmarks of issue #14: cold (un-memoised) radius timings."""
import unicr_fast as uc


def forget_memos() -> None:
    """Clear every memo the library keeps between radius calls -- the Monte-Carlo direction
    sets and sample bank, the exact engine's profile-search memo -- so that the next radius is
    computed from scratch."""
    from unicr_fast.radius.exact import profile as exact_profile
    from unicr_fast import radius as radius_mod
    from unicr_fast.radius.mc import samples as samples_mod
    radius_mod._direction_sets.clear()
    with samples_mod._cache_lock:
        samples_mod._cache.clear()
    exact_profile._MEMO.clear()


def warm_up() -> None:
    """One untimed radius, so that imports and first-call set-up stay out of the timings."""
    uc.certified_radius(uc.noise.Laplace(0.5), 0.9, norm=2, dim=16)


def report_after(rows: list, report):
    """A module fixture's body: warm up, let the module's benchmarks fill ``rows``, then print
    their summary with ``report()``."""
    warm_up()
    yield
    if rows:
        report()
