"""Choosing the set of a multi-seed mix (an album, an artist, a playlist, a genre): one ranked
list per seed, merged round-robin so that every seed is represented.

Each turn goes to the seed that has waited longest (seeds start in the given order), which
takes its nearest candidate that keeps the set rules (:mod:`sidecar.mix.selection`); a seed
with nothing that fits yields its turn.  A track in several seeds' lists is taken once.  When
the places left are no more than the seeds not yet represented, only those seeds may take
(relaxing the cap or the near-duplicate rule if they must), so with ``n >= len(seeds)`` every
seed that has a usable candidate is represented.  Only when no list has a fitting candidate
left is a put-aside one taken (least-breaking first, then the seed whose turn it is, then
rank).
"""

from __future__ import annotations

from sidecar.mix.selection import Option, Picker, Stream


def _forced(picker: Picker, queue: list[Stream], remaining: int) -> list[Stream] | None:
    """Streams that must take now so every seed is represented, or None."""
    unpicked = [s for s in queue if s.picks == 0]
    if not unpicked or len(unpicked) < remaining:
        return None
    unrepresented = []
    for s in unpicked:
        if s.id_set().isdisjoint(picker.chosen_ids):
            unrepresented.append(s)
        else:
            s.picks = 1  # one of its candidates came in through another seed
    if unrepresented and len(unrepresented) >= remaining:
        return unrepresented
    return None


def choose_round_robin(picker: Picker, streams: list[Stream], want: int, relax: bool) -> None:
    """Take up to *want* tracks from the streams, round-robin (see the module's doc)."""
    queue = list(streams)
    multi = len(queue) > 1
    taken = 0
    while taken < want and queue:
        forced = _forced(picker, queue, want - taken) if multi else None
        eligible = forced or queue
        chosen: Stream | None = None
        for s in eligible:
            r = s.next_fit(picker)
            if r is not None:
                s.take(picker, r)
                chosen = s
                break
        if chosen is None:
            best: tuple[Option, int] | None = None
            if relax:
                for turn, s in enumerate(eligible):
                    option = s.best_aside(picker)
                    if option is not None and (
                        best is None
                        or (option.mask, option.excess, turn, option.rank)
                        < (best[0].mask, best[0].excess, best[1], best[0].rank)
                    ):
                        best = (option, turn)
            queue = [s for s in queue if not s.exhausted()]
            if best is None:
                if forced:
                    for s in forced:  # the seeds that had to take cannot: stop waiting for them
                        s.picks = max(s.picks, 1)
                    continue
                break
            option, turn = best
            chosen = eligible[turn]
            chosen.take(picker, option.rank, option.mask)
        taken += 1
        if multi and chosen in queue:
            queue.remove(chosen)
            queue.append(chosen)
