"""KeyedDispatcher: one key's items in order, an arriving item absorbs the one waiting
before it when told to, freeing its place in the read-ahead; an item is done only once
its handler returned (a failing one is handled again; a stop leaves it not done).
GroupedRunner: a group's ready items share a handler call, a lone item never waits for a
call in flight, and a failing item does not fail the others it was grouped with."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from qbsync.dispatch import GroupedRunner, KeyedDispatcher


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()
        self.failing: set[str] = set()

    async def handle(self, items: list[str]) -> None:
        self.calls.append(items)
        await self.release.wait()
        if self.failing & set(items):
            raise ValueError(f"bad item in {items}")


async def until(condition: object, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0)


class KeyedRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.release = asyncio.Event()
        self.done: list[str] = []

    async def handle(self, key: str, items: list[str]) -> None:
        self.calls.append((key, items))
        await self.release.wait()

    def done_of(self, item: str) -> Callable[[], Awaitable[None]]:
        async def done() -> None:
            self.done.append(item)

        return done


def absorb_uppercase(waiting: str, arriving: str) -> str | None:
    """Test rule: an upper-case item stands for a waiting upper-case one."""
    return f"{waiting}+{arriving}" if waiting.isupper() and arriving.isupper() else None


async def test_keyed_items_wait_behind_the_one_in_flight_and_go_in_order() -> None:
    recorder = KeyedRecorder()
    dispatcher = KeyedDispatcher(recorder.handle, capacity=10)
    await dispatcher.submit("a", "a1", recorder.done_of("a1"))
    await until(lambda: len(recorder.calls) == 1)
    for item in ("a2", "a3"):
        await dispatcher.submit("a", item, recorder.done_of(item))
    recorder.release.set()
    await until(lambda: len(recorder.done) == 3)
    assert recorder.calls == [("a", ["a1"]), ("a", ["a2", "a3"])]
    assert recorder.done == ["a1", "a2", "a3"]


async def test_an_arriving_item_absorbs_the_waiting_one_and_frees_its_place() -> None:
    recorder = KeyedRecorder()
    dispatcher = KeyedDispatcher(recorder.handle, capacity=2, absorb=absorb_uppercase)
    await dispatcher.submit("k", "A", recorder.done_of("A"))
    await until(lambda: len(recorder.calls) == 1)  # "A" is in flight: never absorbed
    await dispatcher.submit("k", "B", recorder.done_of("B"))
    # Both places are taken; without absorption these would block until "A" is done.
    for item in ("C", "D", "E"):
        await asyncio.wait_for(dispatcher.submit("k", item, recorder.done_of(item)), 1)
    assert recorder.done == ["B", "C", "D"]  # each absorbed one is done at once
    # Not absorbable, so it needs a place of its own: the one "A" frees.
    last = asyncio.create_task(dispatcher.submit("k", "f", recorder.done_of("f")))
    recorder.release.set()
    await asyncio.wait_for(last, 1)
    await until(lambda: len(recorder.done) == 6)
    assert recorder.calls == [("k", ["A"]), ("k", ["B+C+D+E"]), ("k", ["f"])]
    assert recorder.done[3:] == ["A", "E", "f"]


async def test_an_item_that_does_not_absorb_waits_for_a_free_place() -> None:
    recorder = KeyedRecorder()
    dispatcher = KeyedDispatcher(recorder.handle, capacity=2, absorb=absorb_uppercase)
    await dispatcher.submit("k", "A", recorder.done_of("A"))
    await until(lambda: len(recorder.calls) == 1)
    await dispatcher.submit("k", "B", recorder.done_of("B"))
    blocked = asyncio.create_task(dispatcher.submit("k", "c", recorder.done_of("c")))
    for _ in range(20):  # every chance to get in (each turn of the loop); it must not
        await asyncio.sleep(0)
    assert not blocked.done()
    recorder.release.set()
    await asyncio.wait_for(blocked, 1)
    await until(lambda: len(recorder.done) == 3)
    assert recorder.calls == [("k", ["A"]), ("k", ["B"]), ("k", ["c"])]


async def test_a_failing_handler_gets_the_same_items_again_and_only_then_are_they_done() -> None:
    recorder = KeyedRecorder()
    recorder.release.set()
    failures = 2

    async def fails_twice(key: str, items: list[str]) -> None:
        nonlocal failures
        await recorder.handle(key, items)
        if failures:
            failures -= 1
            raise ConnectionError("dead-letter topic unreachable")

    dispatcher = KeyedDispatcher(fails_twice, capacity=10, first_retry_delay=0)
    await dispatcher.submit("k", "a", recorder.done_of("a"))
    await until(lambda: recorder.done == ["a"])
    assert recorder.calls == [("k", ["a"])] * 3


async def test_stop_lets_the_call_under_way_finish_and_leaves_the_waiting_items_not_done() -> None:
    recorder = KeyedRecorder()
    dispatcher = KeyedDispatcher(recorder.handle, capacity=10)
    await dispatcher.submit("k", "a", recorder.done_of("a"))
    await until(lambda: len(recorder.calls) == 1)
    await dispatcher.submit("k", "b", recorder.done_of("b"))
    stopping = asyncio.create_task(dispatcher.stop(grace=5))
    await until(lambda: dispatcher._stopping.is_set())
    recorder.release.set()
    await asyncio.wait_for(stopping, 1)
    assert recorder.done == ["a"]
    assert recorder.calls == [("k", ["a"])]  # "b" comes again with its message


async def test_stop_cancels_a_call_that_outlasts_the_grace_and_its_items_stay_not_done() -> None:
    recorder = KeyedRecorder()  # never released: the call outlasts any grace
    dispatcher = KeyedDispatcher(recorder.handle, capacity=10)
    await dispatcher.submit("k", "a", recorder.done_of("a"))
    await until(lambda: len(recorder.calls) == 1)
    await asyncio.wait_for(dispatcher.stop(grace=0.01), 1)
    assert recorder.done == []
    assert not dispatcher._workers


async def test_a_failing_handler_is_not_called_again_once_stopped() -> None:
    calls = 0

    async def always_fails(key: str, items: list[str]) -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("unreachable")

    recorder = KeyedRecorder()
    dispatcher = KeyedDispatcher(always_fails, capacity=10, first_retry_delay=60)
    await dispatcher.submit("k", "a", recorder.done_of("a"))
    await until(lambda: calls == 1)
    await asyncio.wait_for(dispatcher.stop(grace=5), 1)  # not the 60 s pause
    assert calls == 1 and recorder.done == []


async def test_items_submitted_after_stop_are_neither_handled_nor_done() -> None:
    recorder = KeyedRecorder()
    recorder.release.set()
    dispatcher = KeyedDispatcher(recorder.handle, capacity=10)
    await dispatcher.stop(grace=1)
    await dispatcher.submit("k", "a", recorder.done_of("a"))
    for _ in range(20):  # every chance to be handled (each turn of the loop); it must not
        await asyncio.sleep(0)
    assert recorder.calls == [] and recorder.done == []


async def test_items_waiting_behind_the_calls_in_flight_go_together() -> None:
    recorder = Recorder()
    runner = GroupedRunner(recorder.handle, concurrency=1, max_items=10)
    first = asyncio.create_task(runner.run("firm-1", "a"))
    await until(lambda: len(recorder.calls) == 1)
    rest = [asyncio.create_task(runner.run("firm-1", item)) for item in ("b", "c", "d")]
    await until(lambda: len(runner._waiting.get("firm-1", [])) == 3)
    recorder.release.set()
    await asyncio.gather(first, *rest)
    assert recorder.calls == [["a"], ["b", "c", "d"]]


async def test_below_the_concurrency_an_item_starts_at_once_and_groups_are_independent() -> None:
    recorder = Recorder()
    runner = GroupedRunner(recorder.handle, concurrency=2, max_items=10)
    tasks = [asyncio.create_task(runner.run("firm-1", "a"))]
    await until(lambda: len(recorder.calls) == 1)
    tasks.append(asyncio.create_task(runner.run("firm-1", "b")))
    tasks.append(asyncio.create_task(runner.run("firm-2", "x")))
    await until(lambda: len(recorder.calls) == 3)  # none waited for "a" to finish
    recorder.release.set()
    await asyncio.gather(*tasks)
    assert sorted(recorder.calls) == [["a"], ["b"], ["x"]]


async def test_a_call_takes_at_most_max_items() -> None:
    recorder = Recorder()
    recorder.release.set()
    runner = GroupedRunner(recorder.handle, concurrency=1, max_items=2)
    await asyncio.gather(*(runner.run("firm-1", item) for item in "abcde"))
    assert [len(call) for call in recorder.calls] == [2, 2, 1]
    assert [item for call in recorder.calls for item in call] == list("abcde")


async def test_when_a_grouped_call_fails_each_item_is_retried_alone() -> None:
    recorder = Recorder()
    recorder.failing = {"b"}
    recorder.release.set()
    runner = GroupedRunner(recorder.handle, concurrency=1, max_items=10)
    results = await asyncio.gather(
        *(runner.run("firm-1", item) for item in "abc"), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert recorder.calls == [["a", "b", "c"], ["a"], ["b"], ["c"]]


async def test_a_lone_failing_item_gets_its_error_once() -> None:
    recorder = Recorder()
    recorder.failing = {"a"}
    recorder.release.set()
    runner = GroupedRunner(recorder.handle, concurrency=1, max_items=10)
    with pytest.raises(ValueError):
        await runner.run("firm-1", "a")
    assert recorder.calls == [["a"]]
