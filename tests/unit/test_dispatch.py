"""GroupedRunner: a group's ready items share a handler call, a lone item never waits for a
call in flight, and a failing item does not fail the others it was grouped with."""

from __future__ import annotations

import asyncio

import pytest

from qbsync.dispatch import GroupedRunner


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
